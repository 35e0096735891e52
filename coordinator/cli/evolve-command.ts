/** `mergeloom evolve`: evolutionary merge search (mergekit-evolve's genome, CMA-ES or random search). */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { MergeloomError } from "@mergeloom/proto/errors";
import { connectNatsTransport } from "@mergeloom/transport";
import { traced } from "@mergeloom/transport";
import { inSpan } from "@mergeloom/proto/tracing";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { LocalDispatcher } from "@mergeloom/engine/job";
import type { CandidateEvaluator } from "../evolve/candidate-evaluator.js";
import { LocalCandidateEvaluator } from "../evolve/local-candidate-evaluator.js";
import { deriveSearchId, NatsCandidateEvaluator } from "../evolve/nats-candidate-evaluator.js";
import { createDfsEvaluator } from "../evolve/dfs/create-dfs-evaluator.js";
import { runEvolve, type EvolveEvent } from "../evolve/run-evolve.js";
import { runHybrid } from "../evolve/hybrid-search.js";
import { runCoarseToFine, type CoarseStage } from "../evolve/coarse-search.js";
import { parseSearchConfig, type SearchConfig } from "../evolve/search-config.js";
import { runMergeJob } from "@mergeloom/engine/job";
import { addNatsOptions, natsOptionsFrom, type NatsFlags } from "./nats-options.js";
import { parseIntFlag } from "./parse-size.js";
import { addScorerOptions, gpuFrom, scorersFrom, type ScorerFlags } from "./scorer-options.js";

interface EvolveFlags extends NatsFlags, ScorerFlags {
  output: string;
  resume?: boolean;
  strategy?: string;
  budget?: string;
  timeLimit?: string;
  seed?: string;
  population?: string;
  sigma0?: string;
  covariance?: string;
  restarts?: string;
  workers: string;
  maxGenerations?: string;
  outModel?: string;
  viaDisk?: boolean;
  json?: boolean;
}

/** What a NATS evaluator needs besides the URL and the search config. */
export interface NatsEvaluatorContext {
  /** Stable across resumes of one search (same -o and search settings), different between searches. */
  searchId: string;
  resume: boolean;
  flags: NatsFlags;
  onWarning: (message: string) => void;
}

export interface EvolveCommandHooks {
  /** Builds the NATS evaluator for --nats (default: NatsCandidateEvaluator over a JetStream connection). */
  createNatsEvaluator?: (url: string, config: SearchConfig, ctx: NatsEvaluatorContext) => Promise<CandidateEvaluator>;
}

/** Evaluation tasks on the cluster's workers (`mergeloom worker` runs an eval worker too). */
async function createDefaultNatsEvaluator(_url: string, config: SearchConfig, ctx: NatsEvaluatorContext): Promise<CandidateEvaluator> {
  const nats = natsOptionsFrom(ctx.flags, process.env, "coordinator", "mergeloom-evolve")!;
  const transport = traced(await connectNatsTransport(nats));
  try {
    return await NatsCandidateEvaluator.create({
      transport,
      fitness: config.fitness,
      mergeSeed: config.search.mergeSeed,
      searchId: ctx.searchId,
      fresh: !ctx.resume,
      ownsTransport: true,
      onWarning: ctx.onWarning,
    });
  } catch (err) {
    await transport.close();
    throw err;
  }
}

function positiveNumber(v: string, flag: string): number {
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0)) throw new MergeloomError("USAGE", `${flag}: expected a number > 0, got '${v}'`);
  return n;
}

/** Applies CLI overrides to the file's `search:` settings. */
export function applySearchFlags(config: SearchConfig, flags: Partial<EvolveFlags>): SearchConfig {
  const s = { ...config.search };
  if (flags.strategy !== undefined) {
    if (flags.strategy !== "cmaes" && flags.strategy !== "random")
      throw new MergeloomError("USAGE", `--strategy: '${flags.strategy}' is not one of cmaes, random`);
    s.strategy = flags.strategy;
  }
  if (flags.budget !== undefined) s.budget = parseIntFlag(flags.budget, "--budget", 1);
  if (flags.timeLimit !== undefined) s.timeLimit = positiveNumber(flags.timeLimit, "--time-limit");
  if (flags.seed !== undefined) s.seed = parseIntFlag(flags.seed, "--seed", 0);
  if (flags.population !== undefined) s.population = parseIntFlag(flags.population, "--population", 2);
  if (flags.sigma0 !== undefined) s.sigma0 = positiveNumber(flags.sigma0, "--sigma0");
  if (flags.covariance !== undefined) {
    if (!["full", "diagonal", "auto"].includes(flags.covariance))
      throw new MergeloomError("USAGE", `--covariance: '${flags.covariance}' is not one of full, diagonal, auto`);
    s.covariance = flags.covariance as SearchConfig["search"]["covariance"];
  }
  if (flags.restarts !== undefined) s.restarts = parseIntFlag(flags.restarts, "--restarts", 0);
  return { ...config, search: s };
}

export async function runEvolveCommand(file: string, flags: EvolveFlags, hooks: EvolveCommandHooks = {}): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new MergeloomError("CONFIG_INVALID", `read search config ${file}: ${(err as Error).message}`, { cause: err });
  }
  const config = applySearchFlags(parseSearchConfig(text, file), flags);
  const natsUrl = natsOptionsFrom(flags, process.env, "coordinator") ? (flags.nats ?? process.env.MERGELOOM_NATS_URL!) : undefined;
  const scorers = await scorersFrom({ ...flags, scorer: flags.scorer ?? [] });
  // The validation split is scored by an evaluator of its own, built the same way.
  const create = async (cfg: SearchConfig, idSuffix: string): Promise<CandidateEvaluator> => {
    // a hybrid search's layer-path phase runs in-process even with --nats (graphs per depth)
    if (cfg.dfs) return createDfsEvaluator(cfg, !!natsUrl && !config.hybrid);
    if (natsUrl) {
      const s = cfg.search;
      const searchId = deriveSearchId(resolve(flags.output), text, JSON.stringify([s.strategy, s.seed, s.population, s.sigma0, s.mergeSeed])) + idSuffix;
      const onWarning = (m: string) => void process.stderr.write(`warning: ${m}\n`);
      return (hooks.createNatsEvaluator ?? createDefaultNatsEvaluator)(natsUrl, cfg, { searchId, resume: !!flags.resume, flags, onWarning });
    }
    return LocalCandidateEvaluator.create({
      fitness: cfg.fitness,
      mergeSeed: cfg.search.mergeSeed,
      workers: parseIntFlag(flags.workers, "--workers", 1),
      viaDisk: !!flags.viaDisk,
      scorers,
      gpu: gpuFrom(flags, process.env),
    });
  };
  const out = resolve(flags.output);
  if (config.hybrid) {
    const print = printer(flags, out);
    await inSpan("job evolve", { "mergeloom.search.out": out }, () =>
      runHybrid({
        config,
        sourceText: text,
        out,
        createEvaluator: (c, stage) => create(c, c.dfs ? "-dfs" : stageSuffix(stage)),
        createValidator: async (c, stage) =>
          c.validation ? create({ ...c, fitness: c.validation.spec }, `${c.dfs ? "-dfs" : stageSuffix(stage)}-validation`) : undefined,
        resume: !!flags.resume,
        onEvent: (e) => print(e),
      }),
    );
    return;
  }
  if (config.search.coarse) {
    const print = printer(flags, out);
    const r = await inSpan("job evolve", { "mergeloom.search.out": out }, () =>
      runCoarseToFine({
        config,
        sourceText: text,
        out,
        createEvaluator: (c, stage) => create(c, stageSuffix(stage)),
        createValidator: async (c, stage) => (c.validation ? create({ ...c, fitness: c.validation.spec }, `${stageSuffix(stage)}-validation`) : undefined),
        resume: !!flags.resume,
        onEvent: (e) => print(e),
      }),
    );
    if (flags.outModel && r.bestYaml) await mergeBest(r.bestYaml, out, flags, config);
    return;
  }
  const evaluator = await create(config, "");
  let validator: CandidateEvaluator | undefined;
  try {
    if (config.validation) validator = await create({ ...config, fitness: config.validation.spec }, "-validation");
  } catch (err) {
    await evaluator.close();
    throw err;
  }
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once("SIGINT", onSig);
  const print = printer(flags, out);
  try {
    // One trace per search run: every candidate's `evaluate` span (local or on a worker) under it.
    const r = await inSpan("job evolve", { "mergeloom.search.out": out }, () =>
      runEvolve({
        config,
        sourceText: text,
        out,
        evaluator,
        validator,
        resume: !!flags.resume,
        maxGenerations: flags.maxGenerations === undefined ? undefined : parseIntFlag(flags.maxGenerations, "--max-generations", 1),
        signal: ac.signal,
        onEvent: print,
      }),
    );
    if (flags.outModel && r.bestYaml) await mergeBest(r.bestYaml, out, flags, config);
  } finally {
    process.off("SIGINT", onSig);
    await evaluator.close();
    await validator?.close();
  }
}

/** NATS search ids per coarse-to-fine stage: the coarse stage's candidates must not collide with the fine stage's. */
function stageSuffix(stage: CoarseStage | undefined): string {
  return stage === "coarse" ? "-coarse" : "";
}

/** --out-model: merge the best candidate's config. */
async function mergeBest(bestYaml: string, out: string, flags: EvolveFlags, config: SearchConfig): Promise<void> {
  const cfg = parseMergeConfig(bestYaml, join(out, "best.yml"), createDefaultRegistry());
  const dispatcher = new LocalDispatcher();
  try {
    await runMergeJob(cfg, dispatcher, { out: resolve(flags.outModel!), seed: config.search.mergeSeed, maxShardBytes: 5_000_000_000 });
  } finally {
    await dispatcher.close();
  }
  if (!flags.json) process.stdout.write(`best model → ${resolve(flags.outModel!)}\n`);
}

function printer(flags: { json?: boolean }, out: string): (e: EvolveEvent & { phase?: string }) => void {
  return (e) => {
    if (flags.json) return void process.stdout.write(JSON.stringify(e) + "\n");
    const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : "failed");
    const p = e.phase ? `[${e.phase}] ` : "";
    if (e.type === "baseline") process.stdout.write(`${p}baseline ${e.name}: ${f(e.fitness)}\n`);
    else if (e.type === "generation")
      process.stdout.write(
        `${p}gen ${e.generation}  evals ${e.evaluations}  min ${f(e.min)}  median ${f(e.median)}  max ${f(e.max)}  best ${f(e.best)}  (${e.seconds.toFixed(1)} s)\n`,
      );
    else if (e.type === "done")
      process.stdout.write(
        `${p}done: ${e.reason}; best ${f(e.best)} after ${e.evaluations} evaluations in ${e.seconds.toFixed(1)} s → ${join(out, e.phase ? e.phase : "", "best.yml")}\n`,
      );
  };
}

export function registerEvolveCommand(program: Command, hooks: EvolveCommandHooks = {}): void {
  const cmd = program
    .command("evolve")
    .description("evolutionary merge search (mergekit-evolve genome + fitness); writes OUT/best.yml, report.md, fitness.svg, state.json")
    .argument("<search>", "SEARCH.yml with genome:, fitness: and optional search: / baselines:")
    .requiredOption("-o, --output <dir>", "output directory (best.yml, report, resumable state)")
    .option("--resume", "continue the search saved in OUT/state.json")
    .option("--strategy <name>", "cmaes or random (default: search.strategy, else cmaes)")
    .option("--budget <n>", "evaluations (whole generations; default: search.budget, else 300)")
    .option("--time-limit <s>", "stop after this many seconds (checked between generations)")
    .option("--seed <n>", "search seed")
    .option("--population <n>", "candidates per generation (default 4 + ⌊3 ln n⌋)")
    .option("--sigma0 <x>", "initial step size (default 1/6)")
    .option("--covariance <kind>", "CMA-ES covariance: full, diagonal (sep-CMA-ES) or auto (diagonal above 100 genes)")
    .option("--restarts <n>", "IPOP-CMA-ES: restart with a doubled population up to n times when stuck (default 0)")
    .option("--workers <n>", "concurrent local evaluations", "1")
    .option("--max-generations <n>", "stop after this many generations in this run (resumable)")
    .option("--out-model <dir>", "merge the best candidate to this directory at the end")
    .option("--via-disk", "write every candidate to disk and read it back (benchmark of the in-memory path)")
    .option("--json", "print one JSON object per event");
  addScorerOptions(cmd);
  addNatsOptions(cmd)
    .addHelpText(
      "after",
      "\nWith --nats, candidates are evaluated by `mergeloom worker` processes (command fitness tasks run only without --nats; `kind: scorer` tasks run the workers' own --scorer commands).",
    )
    .action((file: string, flags: EvolveFlags) => runEvolveCommand(file, flags, hooks));
}
