/**
 * The search loop: ask the strategy for a generation, turn genotypes into mergekit YAML, score
 * them through a CandidateEvaluator, tell the strategy, and checkpoint everything (strategy state
 * with its RNG, every genotype with its scores) to OUT/state.json after every generation, written
 * to a temporary file and renamed so a kill never leaves a torn state. `resume` reloads it and
 * continues exactly: a generation interrupted mid-way is evaluated again from the same draws.
 *
 * Fitness is maximised here (scores are "higher is better"); the strategies minimise, so they are
 * told the negation. Failed candidates (NaN) rank last.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import { ConfigError } from "@mergeloom/engine/errors";
import { openModel } from "@mergeloom/engine/storage";
import type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";
import { candidateYaml } from "./candidate-yaml.js";
import { CmaEs, type CmaState } from "./cma-es.js";
import { IpopCmaEs, type IpopState } from "./ipop-cma-es.js";
import { createDfsGenome } from "./dfs/dfs-search.js";
import { renderFitnessSvg, renderReportMarkdown, spearman, summarize, type GenerationStats, type ValidationSummary } from "./evolve-report.js";
import { genotypeLength, initialGenotype, validateGenomeDefinition } from "./genome.js";
import { paretoFront } from "./pareto.js";
import { RandomSearch, type RandomSearchState } from "./random-search.js";
import type { SearchConfig, SearchSettings } from "./search-config.js";
import { decodeNumber, encodeNumber, type JsonNumber, type SearchStrategy } from "./search-strategy.js";

export interface EvaluatedCandidate {
  generation: number;
  id: string;
  genotype: number[];
  scores: Record<string, JsonNumber>;
  fitness: JsonNumber;
  error?: string;
  /** Score on the validation split (reported, never used to select), when it was scored. */
  validation?: JsonNumber;
  validationScores?: Record<string, JsonNumber>;
}

export interface EvolveState {
  kind: "mergeloom-evolve";
  version: 1;
  /** Hash of the search config and effective settings; resume refuses a different search. */
  searchHash: string;
  settings: SearchSettings;
  numLayers: number;
  strategy: StrategyState;
  generation: number;
  evaluations: EvaluatedCandidate[];
  stats: GenerationStats[];
  best: EvaluatedCandidate | null;
  /**
   * With `search.recommend: mean`: the distribution mean after the last generation, scored on the
   * fitness split (one evaluation of the budget; not a sample, so not in `evaluations`). It is what
   * OUT/best.yml holds; the best sample goes to OUT/best-sample.yml.
   */
  recommended?: EvaluatedCandidate | null;
  /** With `search.recommend_window` > 1: the distribution means after the last generations (oldest first, current IPOP run only). */
  recentMeans?: number[][];
  baselines: { name: string; scores: Record<string, JsonNumber>; fitness: JsonNumber; validation?: JsonNumber }[];
  /** Wall-clock seconds spent so far, over all runs. */
  seconds: number;
  stopReason: string | null;
}

export type EvolveEvent =
  | { type: "baseline"; name: string; fitness: number }
  | { type: "generation"; generation: number; evaluations: number; min: number; median: number; max: number; best: number; seconds: number }
  | { type: "improved"; id: string; fitness: number; validation?: number }
  | { type: "done"; reason: string; evaluations: number; best: number; seconds: number };

export interface EvolveOptions {
  config: SearchConfig;
  /** Text of SEARCH.yml (hashed for resume). */
  sourceText: string;
  out: string;
  evaluator: CandidateEvaluator;
  /** Scores the config's `validation:` split (required when it has one). */
  validator?: CandidateEvaluator;
  resume?: boolean;
  /** Stop after this many generations in this run (testing, staged runs); the state stays resumable. */
  maxGenerations?: number;
  signal?: AbortSignal;
  onEvent?: (e: EvolveEvent) => void;
}

/**
 * How genotypes become candidates: mergekit-evolve's genome (genome.ts) or a DFS layer path
 * (dfs/dfs-search.ts). The loop, its state and the report are shared.
 */
export interface EvolveGenome {
  /** Layers the genome is defined over (kept in the state). */
  numLayers: number;
  /** Genotype length. */
  length: number;
  x0: number[];
  /** The candidate as mergekit YAML; `header` becomes leading comment lines. */
  yaml(genotype: number[], header?: string): string;
  /** The search, for the report's title. */
  title: string;
  /** Files that go with best.yml, written before it (e.g. the DFS path's ONNX graph). */
  writeBestFiles?(out: string, genotype: number[]): Promise<void>;
  /** Markdown lines about the best candidate, appended to report.md. */
  describeBest?(genotype: number[]): string[];
}

async function createGenome(config: SearchConfig, numLayers?: number): Promise<EvolveGenome> {
  if (config.dfs) return createDfsGenome(config.dfs);
  const def = config.genome;
  const n = numLayers ?? (await readNumLayers(def.base_model ?? def.models[0]));
  validateGenomeDefinition(def, n);
  const x0 = initialGenotype(def, n);
  candidateYaml(def, x0, n); // fail on an unsupported genome before any work
  return {
    numLayers: n,
    length: genotypeLength(def, n),
    x0,
    yaml: (x, header) => candidateYaml(def, x, n, header),
    title: `${def.merge_method} over ${def.models.length} models`,
  };
}

export interface EvolveResult {
  state: EvolveState;
  /** OUT/best.yml's text: the recommended candidate's (see `recommendation`). */
  bestYaml: string | null;
}

/** The candidate a search recommends: the scored distribution mean with `recommend: mean`, else the best sample. */
export function recommendation(state: EvolveState): EvaluatedCandidate | null {
  return state.recommended ?? state.best;
}

export async function readNumLayers(ref: string): Promise<number> {
  const ck = await openModel(ref);
  const n = ck.config?.num_hidden_layers;
  if (typeof n !== "number") throw new ConfigError("genome.models", `model '${ref}' has no num_hidden_layers in its config.json`);
  return n;
}

function createStrategy(s: SearchSettings, x0: number[]): SearchStrategy<StrategyState> {
  if (s.strategy === "random") {
    const popSize = s.population ?? 4 + Math.floor(3 * Math.log(x0.length));
    return new RandomSearch({ mode: "gaussian", x0, sigma0: s.sigma0, popSize, seed: s.seed });
  }
  // maxEvals is the budget's business (whole generations), so CMA-ES's own cap is lifted.
  const diagonal = s.covariance === "diagonal" || (s.covariance === "auto" && x0.length > AUTO_DIAGONAL_ABOVE);
  const opts = {
    x0,
    sigma0: s.sigma0,
    seed: s.seed,
    popSize: s.population ?? undefined,
    maxEvals: Number.MAX_SAFE_INTEGER,
    diagonal,
    ...(s.meanRate !== 1 ? { cmean: s.meanRate } : {}),
    ...(s.mirrored ? { mirrored: true } : {}),
  };
  if (s.restarts > 0) return new IpopCmaEs({ ...opts, maxRestarts: s.restarts, patience: s.patience ?? undefined });
  return new CmaEs(opts);
}

/** `covariance: auto` uses sep-CMA-ES above this many genes (full CMA-ES learns n² entries too slowly there). */
export const AUTO_DIAGONAL_ABOVE = 100;

export type StrategyState = CmaState | RandomSearchState | IpopState;

function restoreStrategy(state: StrategyState): SearchStrategy<StrategyState> {
  if (state.kind === "ipop-cma-es") return IpopCmaEs.fromState(state);
  return state.kind === "cma-es" ? CmaEs.fromState(state) : RandomSearch.fromState(state);
}

/** Hash of what determines the search's trajectory; the budget and time limit may change on resume. */
function searchHash(text: string, s: SearchSettings): string {
  const { strategy, seed, population, sigma0, mergeSeed, covariance, restarts, patience, recommend, recommendWindow, meanRate, mirrored } = s;
  // the new settings enter the hash only when set, so states written before them still resume
  const extra: Record<string, unknown> = covariance !== "auto" || restarts !== 0 || patience !== null ? { covariance, restarts, patience } : {};
  if (recommend === "mean") extra.recommend = recommend;
  if (recommendWindow > 1) extra.recommendWindow = recommendWindow;
  if (meanRate !== 1) extra.meanRate = meanRate;
  if (mirrored) extra.mirrored = mirrored;
  return createHash("sha256")
    .update(text)
    .update(JSON.stringify({ strategy, seed, population, sigma0, mergeSeed, ...extra }))
    .digest("hex")
    .slice(0, 16);
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

const enc = (scores: Record<string, number>): Record<string, JsonNumber> =>
  Object.fromEntries(Object.entries(scores).map(([k, v]) => [k, Number.isNaN(v) ? "-Infinity" : encodeNumber(v)]));
const dec = (scores: Record<string, JsonNumber>): Record<string, number> => Object.fromEntries(Object.entries(scores).map(([k, v]) => [k, decodeNumber(v)]));
/** Failed (NaN) fitness is stored as -Infinity: the worst possible score, and JSON-safe. */
const encFit = (f: number): JsonNumber => (Number.isNaN(f) ? "-Infinity" : encodeNumber(f));

export async function runEvolve(opts: EvolveOptions): Promise<EvolveResult> {
  const { config, out, evaluator } = opts;
  const validator = config.validation ? opts.validator : undefined;
  if (config.validation && !validator)
    throw new MergeloomError("CONFIG_INVALID", "evolve: the search config has a validation split but no validation evaluator was given");
  const emit = opts.onEvent ?? (() => {});
  const s = config.search;
  const stateFile = join(out, "state.json");
  const hash = searchHash(opts.sourceText, s);
  await mkdir(out, { recursive: true });

  let state: EvolveState;
  let existing: string | undefined;
  try {
    existing = await readFile(stateFile, "utf8");
  } catch {
    existing = undefined;
  }
  if (existing !== undefined && !opts.resume) {
    throw new MergeloomError("OUTPUT_EXISTS", `evolve ${out}: a search state already exists there; pass --resume to continue it or choose another -o`);
  }
  if (existing !== undefined) {
    state = JSON.parse(existing) as EvolveState;
    if (state.kind !== "mergeloom-evolve" || state.version !== 1)
      throw new MergeloomError("CONFIG_INVALID", `resume ${stateFile}: not a mergeloom evolve state (version 1)`);
    if (state.searchHash !== hash) {
      throw new MergeloomError(
        "CONFIG_INVALID",
        `resume ${stateFile}: the search config or its seed/strategy/population/sigma0 changed since the state was written; resume with the same ones or use a new -o`,
      );
    }
    state.settings = s;
  } else {
    const fresh = await createGenome(config);
    state = {
      kind: "mergeloom-evolve",
      version: 1,
      searchHash: hash,
      settings: s,
      numLayers: fresh.numLayers,
      strategy: createStrategy(s, fresh.x0).state(),
      generation: 0,
      evaluations: [],
      stats: [],
      best: null,
      baselines: [],
      seconds: 0,
      stopReason: null,
    };
  }
  state.stopReason = null;
  const strategy = restoreStrategy(state.strategy);
  const genome = await createGenome(config, state.numLayers);
  if (genome.length !== strategy.ask()[0].length) throw new MergeloomError("CONFIG_INVALID", `resume ${stateFile}: the genome's length changed`);
  let started = performance.now();
  const elapsed = () => state.seconds + (performance.now() - started) / 1000;
  const save = async () => {
    state.seconds = elapsed();
    started = performance.now();
    state.strategy = strategy.state();
    await writeAtomic(stateFile, JSON.stringify(state));
  };

  // Baselines: scored once, before the search, with the same evaluator.
  if (state.baselines.length < config.baselines.length) {
    const cands: Candidate[] = [];
    for (const b of config.baselines.slice(state.baselines.length)) {
      cands.push({ id: b.name, genotype: [], mergeYaml: b.yaml ?? (await readFile(b.file!, "utf8")) });
    }
    const res = await opts.evaluator.evaluate(cands, opts.signal);
    const val = validator ? new Map((await validator.evaluate(cands, opts.signal)).map((r) => [r.id, r.fitness])) : undefined;
    for (const r of res) {
      const b: EvolveState["baselines"][number] = { name: r.id, scores: enc(r.scores), fitness: encFit(r.fitness) };
      if (val) b.validation = encFit(val.get(r.id) ?? NaN);
      state.baselines.push(b);
      emit({ type: "baseline", name: r.id, fitness: r.fitness });
    }
    await save();
  }

  const recommendMean = s.recommend === "mean";
  if (recommendMean && !strategy.distributionMean)
    throw new ConfigError("search.recommend", `mean needs a CMA-ES strategy (this search uses ${s.strategy}); use best`);
  let runGenerations = 0;
  let reason = "";
  for (;;) {
    const pop = strategy.ask();
    // recommend: mean keeps one evaluation of the budget for scoring the final mean
    const need = pop.length + (recommendMean ? 1 : 0);
    if (state.evaluations.length + need > s.budget) {
      // Stopping before any generation would report "best failed after 0 evaluations", which reads like a broken merge.
      if (!state.evaluations.length)
        throw new ConfigError(
          "search.budget",
          `${s.budget} evaluations cannot hold one generation (${pop.length} candidates${recommendMean ? " + 1 for the mean" : ""}); set it to at least ${need}`,
        );
      reason = `budget of ${s.budget} evaluations reached`;
    } else if (s.timeLimit !== null && elapsed() >= s.timeLimit) reason = `time limit of ${s.timeLimit} s reached`;
    else if (opts.maxGenerations !== undefined && runGenerations >= opts.maxGenerations)
      reason = `stopped after ${runGenerations} generations (--max-generations); resume to continue`;
    else if (strategy.stop().length > 0) reason = `strategy converged (${strategy.stop().join(", ")})`;
    if (reason) break;
    opts.signal?.throwIfAborted();

    const gen = state.generation;
    const cands: Candidate[] = pop.map((x, i) => ({ id: `g${gen}-c${i}`, genotype: x, mergeYaml: genome.yaml(x) }));
    const results = await evaluator.evaluate(cands, opts.signal);
    const byId = new Map<string, CandidateResult>(results.map((r) => [r.id, r]));
    const fitness = cands.map((c) => {
      const r = byId.get(c.id);
      if (!r) throw new MergeloomError("EVAL_FAILED", `evolve generation ${gen}: the evaluator returned no result for candidate ${c.id}`);
      return r.fitness;
    });
    const restartsBefore = restartCount(strategy);
    strategy.tell(
      pop,
      fitness.map((f) => (Number.isNaN(f) ? NaN : -f)),
    );
    if (recommendMean && s.recommendWindow > 1) {
      // an IPOP restart starts a new distribution: its predecessors' means are not averaged with it
      state.recentMeans = restartCount(strategy) === restartsBefore ? [...(state.recentMeans ?? []), strategy.distributionMean!].slice(-s.recommendWindow) : [];
    }
    // The best is chosen by fitness alone; validation only scores what fitness chose (or, with
    // `every: all`, every candidate, for the report's correlations).
    const prevBest = state.best;
    const entries: EvaluatedCandidate[] = cands.map((c, i) => {
      const r = byId.get(c.id)!;
      const e: EvaluatedCandidate = { generation: gen, id: c.id, genotype: c.genotype, scores: enc(r.scores), fitness: encFit(r.fitness) };
      if (r.error) e.error = r.error;
      state.evaluations.push(e);
      const f = fitness[i];
      if (Number.isFinite(f) && (state.best === null || f > decodeNumber(state.best.fitness))) state.best = e;
      return e;
    });
    if (validator) {
      const toScore = config.validation!.every === "all" ? entries : state.best !== prevBest ? [state.best!] : [];
      const vres = toScore.length
        ? await validator.evaluate(
            toScore.map((e) => cands.find((c) => c.id === e.id)!),
            opts.signal,
          )
        : [];
      for (const r of vres) {
        const e = toScore.find((x) => x.id === r.id)!;
        e.validation = encFit(r.fitness);
        e.validationScores = enc(r.scores);
      }
    }
    if (state.best !== prevBest) {
      const b = state.best!;
      emit({ type: "improved", id: b.id, fitness: decodeNumber(b.fitness), ...(b.validation !== undefined ? { validation: decodeNumber(b.validation) } : {}) });
    }
    const sum = summarize(fitness);
    const best = state.best ? decodeNumber(state.best.fitness) : NaN;
    const stat: GenerationStats = { generation: gen, evaluations: state.evaluations.length, ...sum, best };
    if (state.best?.validation !== undefined) stat.validation = decodeNumber(state.best.validation);
    state.stats.push(stat);
    state.generation = gen + 1;
    state.recommended = null; // a new generation moves the mean
    runGenerations++;
    // best.yml first: state.json never points at a best that is not on disk.
    if (state.best?.generation === gen) await writeBest(out, state, genome, config);
    await save();
    await writeReport(out, state, config, genome);
    emit({ type: "generation", generation: gen, evaluations: state.evaluations.length, ...sum, best, seconds: state.seconds });
  }
  if (recommendMean && !state.recommended && state.evaluations.length > 0) {
    const mean = s.recommendWindow > 1 && state.recentMeans?.length ? averageOf(state.recentMeans) : strategy.distributionMean!;
    const cand: Candidate = { id: `mean-g${state.generation}`, genotype: mean, mergeYaml: genome.yaml(mean) };
    const [r] = await evaluator.evaluate([cand], opts.signal);
    const e: EvaluatedCandidate = { generation: state.generation, id: cand.id, genotype: mean, scores: enc(r.scores), fitness: encFit(r.fitness) };
    if (r.error) e.error = r.error;
    if (validator) {
      const [v] = await validator.evaluate([cand], opts.signal);
      e.validation = encFit(v.fitness);
      e.validationScores = enc(v.scores);
    }
    state.recommended = e;
    await genome.writeBestFiles?.(out, e.genotype);
    await writeAtomic(join(out, "best.yml"), candidateYamlOf(e, state, genome, config, "the distribution mean (search.recommend: mean)"));
  }
  state.stopReason = reason;
  await save();
  await writeReport(out, state, config, genome);
  const pick = recommendation(state);
  emit({ type: "done", reason, evaluations: state.evaluations.length, best: pick ? decodeNumber(pick.fitness) : NaN, seconds: state.seconds });
  return {
    state,
    bestYaml: pick ? candidateYamlOf(pick, state, genome, config, state.recommended ? "the distribution mean (search.recommend: mean)" : undefined) : null,
  };
}

/** IPOP restarts so far (0 for a plain CMA-ES). */
function restartCount(strategy: SearchStrategy<StrategyState>): number {
  return strategy instanceof IpopCmaEs ? strategy.restartCount : 0;
}

/** The coordinate-wise average of the given points. */
export function averageOf(points: readonly number[][]): number[] {
  return points[0].map((_, i) => points.reduce((acc, p) => acc + p[i], 0) / points.length);
}

function candidateYamlOf(b: EvaluatedCandidate, state: EvolveState, genome: EvolveGenome, config: SearchConfig, what?: string): string {
  const scores = config.fitness.tasks.map((t) => `${t.name} ${decodeNumber(b.scores[t.name] ?? NaN).toFixed(4)}`).join(", ");
  const header = `mergeloom evolve: ${what ? `${what}, ` : ""}candidate ${b.id}, fitness ${decodeNumber(b.fitness).toFixed(6)} (${scores})\nreproduce: mergeloom merge best.yml -o MODEL --random-seed ${state.settings.mergeSeed}`;
  return genome.yaml(b.genotype, header);
}

/** The best sample: OUT/best.yml, or OUT/best-sample.yml when best.yml is the recommended mean. */
async function writeBest(out: string, state: EvolveState, genome: EvolveGenome, config: SearchConfig): Promise<void> {
  const file = state.settings.recommend === "mean" ? "best-sample.yml" : "best.yml";
  if (file === "best.yml") await genome.writeBestFiles?.(out, state.best!.genotype);
  await writeAtomic(join(out, file), candidateYamlOf(state.best!, state, genome, config));
}

async function writeReport(out: string, state: EvolveState, config: SearchConfig, genome: EvolveGenome): Promise<void> {
  const taskNames = config.fitness.tasks.map((t) => t.name);
  const baselines = state.baselines.map((b) => ({
    name: b.name,
    fitness: decodeNumber(b.fitness),
    scores: dec(b.scores),
    ...(b.validation !== undefined ? { validation: decodeNumber(b.validation) } : {}),
  }));
  let front: { id: string; scores: Record<string, number> }[] | undefined;
  if (config.fitness.objective === "pareto") {
    const pts = state.evaluations
      .filter((e) => Number.isFinite(decodeNumber(e.fitness)))
      .map((e) => ({ scores: taskNames.map((t) => decodeNumber(e.scores[t])), item: e }));
    front = paretoFront(pts).map((p) => ({ id: p.item.id, scores: dec(p.item.scores) }));
    await writeAtomic(
      join(out, "front.json"),
      JSON.stringify(
        paretoFront(pts).map((p) => ({ id: p.item.id, scores: p.item.scores, genotype: p.item.genotype, crowding: encodeNumber(p.crowding) })),
        null,
        1,
      ),
    );
  }
  await writeAtomic(join(out, "fitness.svg"), renderFitnessSvg(state.stats, baselines));
  const pick = recommendation(state);
  let bestNotes = pick && genome.describeBest ? genome.describeBest(pick.genotype).join("\n") + "\n" : "";
  if (state.recommended) {
    const r = state.recommended;
    bestNotes +=
      `\nRecommended (search.recommend: mean): best.yml is the distribution mean after ${state.evaluations.length} evaluations${
        state.recentMeans && state.recentMeans.length > 1 ? `, averaged over the last ${state.recentMeans.length} generations (search.recommend_window)` : ""
      } (${r.id}), ` +
      `fitness ${decodeNumber(r.fitness).toFixed(4)}${r.validation !== undefined ? `, validation ${decodeNumber(r.validation).toFixed(4)}` : ""}; ` +
      `the best sample (${state.best?.id ?? "none"}, fitness ${state.best ? decodeNumber(state.best.fitness).toFixed(4) : "—"}) is best-sample.yml.\n`;
  }
  await writeAtomic(
    join(out, "report.md"),
    renderReportMarkdown({
      title: `mergeloom evolve: ${genome.title} (${state.settings.strategy}, seed ${state.settings.seed})`,
      stats: state.stats,
      best: state.best
        ? {
            id: state.best.id,
            fitness: decodeNumber(state.best.fitness),
            scores: dec(state.best.scores),
            ...(state.best.validation !== undefined ? { validation: decodeNumber(state.best.validation) } : {}),
          }
        : null,
      validation: config.validation ? validationSummary(state, config.validation.every) : undefined,
      baselines,
      front,
      taskNames,
      evaluations: state.evaluations.length,
      seconds: elapsed0(state),
      stopReason: state.stopReason ?? "running",
    }) + bestNotes,
  );
}

/** With `every: all`: how well fitness ranks candidates as validation does, and the validation-selected candidate (for comparison only). */
function validationSummary(state: EvolveState, every: "best" | "all"): ValidationSummary {
  const pairs = state.evaluations
    .filter((e) => e.validation !== undefined && Number.isFinite(decodeNumber(e.fitness)) && Number.isFinite(decodeNumber(e.validation!)))
    .map((e) => ({ id: e.id, fitness: decodeNumber(e.fitness), validation: decodeNumber(e.validation!) }));
  const summary: ValidationSummary = { every, scored: pairs.length };
  if (every === "all" && pairs.length >= 3) {
    summary.spearman = spearman(
      pairs.map((p) => p.fitness),
      pairs.map((p) => p.validation),
    );
    const top = pairs.reduce((a, b) => (b.validation > a.validation ? b : a));
    summary.validationSelected = top;
  }
  return summary;
}

function elapsed0(state: EvolveState): number {
  return state.seconds;
}
