/**
 * Coarse-to-fine search (`search.coarse`): find the starting point of a fine genome automatically
 * instead of by hand.
 *
 * 1. Coarse stage — `share` of the budget, in OUT/coarse: the same merge genome with one gene set
 *    per model (layer_granularity 0, no filters, per-model λ folded into the weights), so CMA-ES
 *    searches a handful of genes (one weight per expert, plus densities etc.) with step `sigma0`.
 *    On arith-llama this finds the "keep mul's whole task vector" region that a start at
 *    1/models misses (coordinator/evolve/README.md).
 * 2. Fine stage — the rest of the budget, in OUT/fine, seed + 1: the full genome with x0 = the
 *    coarse best broadcast to every layer group and filter set (`genome.initial`, one value per
 *    model and gene kind; λ = 1), i.e. the same merge, from which the fine genes move apart.
 *
 * OUT/best.yml is the better stage's best by fitness; OUT/report.md names both. Both stages are
 * whole evolve searches (their own report, state, resume); resuming resumes whichever was running.
 */
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { CandidateEvaluator } from "./candidate-evaluator.js";
import { initialGeneValue, searchedParams, type GenomeDefinition } from "./genome.js";
import { recommendation, type EvolveEvent, type EvolveResult } from "./run-evolve.js";
import { runEvolveStage } from "./run-evolve-stage.js";
import type { SearchConfig } from "./search-config.js";
import { decodeNumber } from "./search-strategy.js";

export type CoarseStage = "coarse" | "fine";

export interface CoarseToFineOptions {
  /** A merge-genome search with `search.coarse` set. */
  config: SearchConfig;
  sourceText: string;
  out: string;
  /** Evaluators for a stage's config (both stages score the same fitness). */
  createEvaluator(stage: SearchConfig, name: CoarseStage): Promise<CandidateEvaluator>;
  createValidator?(stage: SearchConfig, name: CoarseStage): Promise<CandidateEvaluator | undefined>;
  resume?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: EvolveEvent & { phase?: string }) => void;
}

/** The coarse genome: one gene set per model; x0 = the fine genome's x0 with λ folded into the weights. */
export function coarseGenome(def: GenomeDefinition): GenomeDefinition {
  const params = searchedParams(def);
  const initial: Record<string, number[]> = {};
  for (const name of params) {
    initial[name] = def.models.map((_, m) => {
      const v = initialGeneValue(def, name, m);
      if (name !== "weight" || !def.per_model_lambda) return v;
      const l = initialGeneValue(def, "lambda", m);
      // the phenotype weight is signed(w) · signed(λ) (genome.ts): one gene with the same phenotype
      return def.allow_negative_weights ? v * l : Math.abs(v) * Math.abs(l);
    });
  }
  // one gene set per model already: per_model kinds are ordinary genes here ([model][param] layout)
  return { ...def, layer_granularity: 0, filters: null, smooth: false, per_model_lambda: false, per_model: null, initial };
}

/**
 * The fine genome started at a coarse genotype (`coarseBest`: [model][param] row-major, the coarse
 * genome's layout): every layer group and filter set of model m gets model m's coarse genes, λ = 1.
 * The raw genes are copied, so the phenotype (after abs / clamp) is the coarse best's.
 */
export function fineGenome(def: GenomeDefinition, coarseBest: readonly number[]): GenomeDefinition {
  const params = searchedParams(def);
  if (coarseBest.length !== def.models.length * params.length) {
    throw new MergeloomError("CONFIG_INVALID", `coarse-to-fine: expected ${def.models.length * params.length} coarse genes, got ${coarseBest.length}`);
  }
  const initial: Record<string, number[]> = {};
  params.forEach((name, p) => (initial[name] = def.models.map((_, m) => coarseBest[m * params.length + p])));
  if (def.per_model_lambda) initial.lambda = def.models.map(() => 1);
  return { ...def, initial };
}

/** Budgets and settings of the two stages (`coarseBest` = the coarse stage's best genotype, once known). */
export function coarseToFinePhases(config: SearchConfig, coarseBest?: readonly number[]): { coarse: SearchConfig; fine?: SearchConfig } {
  const c = config.search.coarse;
  if (!c) throw new MergeloomError("CONFIG_INVALID", "coarse-to-fine: the search config has no search.coarse");
  const coarseBudget = Math.max(1, Math.round(config.search.budget * c.share));
  const base = { ...config.search, coarse: null };
  const coarse: SearchConfig = {
    ...config,
    genome: coarseGenome(config.genome),
    // a handful of genes: CMA-ES's own population, one run
    search: { ...base, budget: coarseBudget, sigma0: c.sigma0, population: null, restarts: 0, patience: null },
  };
  if (!coarseBest) return { coarse };
  const fine: SearchConfig = {
    ...config,
    baselines: [],
    genome: fineGenome(config.genome, coarseBest),
    search: { ...base, budget: Math.max(1, config.search.budget - coarseBudget), seed: config.search.seed + 1 },
  };
  return { coarse, fine };
}

async function stage(opts: CoarseToFineOptions, cfg: SearchConfig, out: string, name: CoarseStage, note: string): Promise<EvolveResult> {
  const evaluator = await opts.createEvaluator(cfg, name);
  const validator = cfg.validation ? await opts.createValidator?.(cfg, name) : undefined;
  return runEvolveStage({
    config: cfg,
    sourceText: `${opts.sourceText}\n# coarse-to-fine stage ${name}: ${note}`,
    out,
    evaluator,
    validator,
    resume: opts.resume,
    signal: opts.signal,
    onEvent: (e) => opts.onEvent?.({ ...e, phase: name }),
  });
}

/**
 * Runs both stages and writes OUT/best.yml (the better best by fitness) and OUT/report.md. The
 * result is the winning stage's, with both stages' evaluations (in order) in `state.evaluations`.
 */
export async function runCoarseToFine(opts: CoarseToFineOptions): Promise<EvolveResult & { winner: CoarseStage }> {
  const out = resolve(opts.out);
  const c = opts.config.search.coarse!;
  const first = coarseToFinePhases(opts.config);
  const coarse = await stage(opts, first.coarse, join(out, "coarse"), "coarse", `share ${c.share}, sigma0 ${c.sigma0}`);
  const coarseBest = recommendation(coarse.state);
  if (!coarseBest) throw new Error(`evolve ${out}: the coarse stage found no candidate that scored; see ${join(out, "coarse", "report.md")}`);
  const { fine: fineCfg } = coarseToFinePhases(opts.config, coarseBest.genotype);
  const x0 = JSON.stringify(fineCfg!.genome.initial);
  const fine = await stage(opts, fineCfg!, join(out, "fine"), "fine", `x0 ${x0}`);

  const fit = (r: EvolveResult) => {
    const pick = recommendation(r.state);
    return pick ? decodeNumber(pick.fitness) : -Infinity;
  };
  const winner: CoarseStage = fit(fine) > fit(coarse) ? "fine" : "coarse";
  await copyFile(join(out, winner, "best.yml"), join(out, "best.yml"));
  const line = (r: EvolveResult) =>
    `${r.state.evaluations.length} evaluations, ${r.state.recommended ? "recommended (mean) fitness" : "best fitness"} ${fit(r).toFixed(4)}${recommendation(r.state)?.validation !== undefined ? `, validation ${decodeNumber(recommendation(r.state)!.validation!).toFixed(4)}` : ""}`;
  const hasReport = await readFile(join(out, "fine", "report.md"), "utf8").then(
    () => true,
    () => false,
  );
  await writeFile(
    join(out, "report.md"),
    [
      "# mergeloom evolve: coarse-to-fine search",
      "",
      `- coarse stage, one gene set per model (coarse/report.md): ${line(coarse)}`,
      `- fine stage from the coarse best (fine/report.md): ${line(fine)}; x0 per model: \`${x0}\``,
      `- best.yml is the ${winner} stage's ${(winner === "fine" ? fine : coarse).state.recommended ? "recommendation" : "best"} (chosen by fitness).`,
      "",
      hasReport ? "The stages' own reports hold the curves, baselines and validation." : "",
      "",
    ].join("\n"),
  );
  const won = winner === "fine" ? fine : coarse;
  return { state: { ...won.state, evaluations: [...coarse.state.evaluations, ...fine.state.evaluations] }, bestYaml: won.bestYaml, winner };
}
