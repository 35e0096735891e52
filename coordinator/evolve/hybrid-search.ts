/**
 * Hybrid search (Akiba et al. 2024, §3.3: parameter space, then data-flow space):
 *
 * 1. PS phase — the merge genome, `split` of the budget, in OUT/ps (a whole evolve search: best.yml,
 *    report, resumable state). Its best is merged to OUT/ps/model.
 * 2. DFS phase — a layer path over [OUT/ps/model, ...dfs.models] with the rest of the budget, in
 *    OUT/dfs. The PS model comes first, so the layer path's x0 (init first_model) is the PS merge
 *    itself and the search explores paths around it.
 *
 * The result is the better of the two phases' bests by fitness, so never worse than the PS phase.
 *
 * OUT/best.yml is the better phase's best: the PS merge config, or the passthrough config over
 * OUT/ps/model (+ OUT/best.onnx, the evaluation graph for its depth). A layer path over a merged
 * model is two configs — mergekit has no single-file form for it — so OUT/report.md lists both
 * commands that rebuild the model. Resuming resumes whichever phase was running.
 */
import { copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { ConfigError } from "@mergeloom/engine/errors";
import { writeCandidateCheckpoint } from "@mergeloom/engine/eval";
import type { CandidateEvaluator } from "./candidate-evaluator.js";
import { runCoarseToFine, type CoarseStage } from "./coarse-search.js";
import { recommendation, type EvolveEvent, type EvolveResult } from "./run-evolve.js";
import { runEvolveStage } from "./run-evolve-stage.js";
import type { SearchConfig } from "./search-config.js";
import { decodeNumber } from "./search-strategy.js";
import { defaultPopSize } from "./cma-es.js";
import { readDfsModels } from "./dfs/dfs-search.js";
import { dfsGenotypeLength } from "./dfs/dfs-genome.js";

export interface HybridOptions {
  config: SearchConfig;
  sourceText: string;
  out: string;
  /**
   * Evaluators for a phase's config (the PS phase gets the merge genome, the DFS phase the dfs one);
   * `stage` names a coarse-to-fine PS phase's stage ("coarse" or "fine").
   */
  createEvaluator(phase: SearchConfig, stage?: CoarseStage): Promise<CandidateEvaluator>;
  createValidator?(phase: SearchConfig, stage?: CoarseStage): Promise<CandidateEvaluator | undefined>;
  resume?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: EvolveEvent & { phase?: string }) => void;
}

export interface HybridResult {
  ps: EvolveResult;
  dfs: EvolveResult;
  winner: "ps" | "dfs";
}

/** The two phase configs of a hybrid search: the DFS phase's models are [psModel, ...dfs.models]. */
export function hybridPhases(config: SearchConfig, psModel: string): { ps: SearchConfig; dfs: SearchConfig } {
  const h = config.hybrid!;
  const psBudget = Math.max(1, Math.round(config.search.budget * config.search.split));
  const ps: SearchConfig = { ...config, hybrid: undefined, search: { ...config.search, budget: psBudget } };
  const { graph: _graph, ...dfsFitness } = config.fitness;
  const dfs: SearchConfig = {
    ...config,
    hybrid: undefined,
    baselines: [],
    dfs: { ...h.dfs, models: [psModel, ...h.dfs.models] },
    genome: { models: [psModel, ...h.dfs.models], merge_method: "linear" },
    fitness: dfsFitness,
    search: { ...config.search, budget: Math.max(1, config.search.budget - psBudget), sigma0: h.dfsSigma0, seed: config.search.seed + 1, coarse: null },
  };
  if (config.validation) {
    const { graph: _g, ...v } = config.validation.spec;
    dfs.validation = { ...config.validation, spec: v };
  }
  return { ps, dfs };
}

async function phase(opts: HybridOptions, cfg: SearchConfig, out: string, name: "ps" | "dfs"): Promise<EvolveResult> {
  // a PS phase with search.coarse is itself a coarse-to-fine search (OUT/ps/coarse, OUT/ps/fine)
  if (cfg.search.coarse && !cfg.dfs) {
    return runCoarseToFine({
      config: cfg,
      sourceText: `${opts.sourceText}\n# hybrid phase ${name}`,
      out,
      createEvaluator: (c, stage) => opts.createEvaluator(c, stage),
      createValidator: opts.createValidator && ((c, stage) => opts.createValidator!(c, stage)),
      resume: opts.resume,
      signal: opts.signal,
      onEvent: (e) => opts.onEvent?.({ ...e, phase: `${name}/${e.phase}` }),
    });
  }
  const evaluator = await opts.createEvaluator(cfg);
  const validator = cfg.validation ? await opts.createValidator?.(cfg) : undefined;
  return runEvolveStage({
    config: cfg,
    sourceText: `${opts.sourceText}\n# hybrid phase ${name}`,
    out,
    evaluator,
    validator,
    resume: opts.resume,
    signal: opts.signal,
    onEvent: (e) => opts.onEvent?.({ ...e, phase: name }),
  });
}

export async function runHybrid(opts: HybridOptions): Promise<HybridResult> {
  const out = resolve(opts.out);
  const psModel = join(out, "ps", "model");
  const phases = hybridPhases(opts.config, psModel);
  await checkDfsBudget(opts.config, phases.dfs);
  const ps = await phase(opts, phases.ps, join(out, "ps"), "ps");
  if (!ps.bestYaml) throw new Error(`evolve hybrid ${out}: the parameter-space phase found no candidate that scored; see ${join(out, "ps", "report.md")}`);
  // The PS best as a checkpoint: the first model of the layer path.
  await rm(psModel, { recursive: true, force: true });
  await writeCandidateCheckpoint(parseMergeConfig(ps.bestYaml, join(out, "ps", "best.yml"), createDefaultRegistry()), psModel, opts.config.search.mergeSeed);
  const dfs = await phase(opts, phases.dfs, join(out, "dfs"), "dfs");

  const fit = (r: EvolveResult) => {
    const pick = recommendation(r.state);
    return pick ? decodeNumber(pick.fitness) : -Infinity;
  };
  const winner = fit(dfs) > fit(ps) ? "dfs" : "ps";
  await copyFile(join(out, winner, "best.yml"), join(out, "best.yml"));
  await rm(join(out, "best.onnx"), { force: true });
  if (winner === "dfs") await copyFile(join(out, "dfs", "best.onnx"), join(out, "best.onnx"));
  const psReport = await readFile(join(out, "ps", "report.md"), "utf8").catch(() => "");
  const line = (r: EvolveResult) =>
    `${r.state.evaluations.length} evaluations, ${r.state.recommended ? "recommended (mean) fitness" : "best fitness"} ${fit(r).toFixed(4)}${recommendation(r.state)?.validation !== undefined ? `, validation ${decodeNumber(recommendation(r.state)!.validation!).toFixed(4)}` : ""}`;
  await writeFile(
    join(out, "report.md"),
    [
      `# mergeloom evolve: hybrid search (parameter space, then layer path)`,
      "",
      `- parameter-space phase (ps/report.md): ${line(ps)}`,
      `- layer-path phase over ps/model + ${phases.dfs.dfs!.models.length - 1} models (dfs/report.md): ${line(dfs)}`,
      `- best.yml is the ${winner === "dfs" ? "layer-path" : "parameter-space"} phase's ${(winner === "dfs" ? dfs : ps).state.recommended ? "recommendation" : "best"} (chosen by fitness).`,
      "",
      "Rebuild the model:",
      "",
      "```sh",
      ...(winner === "dfs"
        ? [
            `mergeloom merge ${join(out, "ps", "best.yml")} -o ${psModel}   # the PS merge the path uses`,
            `mergeloom merge ${join(out, "best.yml")} -o MODEL                # the layer path; score with --onnx ${join(out, "best.onnx")}`,
          ]
        : [`mergeloom merge ${join(out, "best.yml")} -o MODEL`]),
      "```",
      "",
      psReport ? "The phases' own reports hold the curves, baselines and validation." : "",
      "",
    ].join("\n"),
  );
  return { ps, dfs, winner };
}

/**
 * Fails before the parameter-space phase (hours, at scale) when the layer-path phase's share of the
 * budget cannot hold one generation. The PS model does not exist yet; the merge's first model stands
 * in for it (a merge keeps its models' layer count).
 */
async function checkDfsBudget(config: SearchConfig, dfs: SearchConfig): Promise<void> {
  const def = { ...dfs.dfs!, models: [config.genome.models[0], ...dfs.dfs!.models.slice(1)] };
  const { layerCounts } = await readDfsModels(def);
  const pop = dfs.search.population ?? defaultPopSize(dfsGenotypeLength(def, layerCounts));
  const need = pop + (dfs.search.recommend === "mean" ? 1 : 0);
  if (dfs.search.budget < need) {
    const { budget, split } = config.search;
    let enough = need + 1;
    while (enough - Math.max(1, Math.round(enough * split)) < need) enough++;
    throw new ConfigError(
      "search.budget",
      `the layer-path phase gets ${dfs.search.budget} of the ${budget} evaluations (search.split ${split}), fewer than one generation needs (${need}); raise search.budget to at least ${enough} or lower search.split`,
    );
  }
}
