/**
 * SEARCH.yml: mergekit-evolve's `genome:` section, a `fitness:` section and optional `search:`
 * settings (CLI flags override them) and `baselines:` (mergekit configs scored the same way, for
 * the report). Unknown keys are errors, so a typo never silently changes a search.
 */
import { resolve } from "node:path";
import { parseDocument, stringify } from "yaml";
import { ConfigError } from "@mergeloom/engine/errors";
import { yamlToJs } from "@mergeloom/engine/config";
import { isGraphTask, type FitnessSpec, type FitnessTask, type FitnessTaskKind, type LikelihoodMeasure } from "@mergeloom/engine/eval";
import { DFS_DEFAULT_SIGMA0, parseDfsGenome, type DfsGenomeDefinition } from "./dfs/dfs-genome.js";
import { METHOD_PARAMS, type GenomeDefinition, type GenomeMergeMethod } from "./genome.js";

export type StrategyName = "cmaes" | "random";

export interface SearchSettings {
  strategy: StrategyName;
  /** Evaluations; the search stops before a generation that would exceed it. */
  budget: number;
  /** Wall-clock seconds (summed over resumed runs); null = none. */
  timeLimit: number | null;
  seed: number;
  /** Candidates per generation; null = CMA-ES's default 4 + ⌊3 ln n⌋. */
  population: number | null;
  sigma0: number;
  /** Seed of the merges themselves (DARE masks), as `mergeloom merge --random-seed`. */
  mergeSeed: number;
  /** CMA-ES covariance: full, diagonal (sep-CMA-ES), or auto = diagonal above 100 genes. */
  covariance: "full" | "diagonal" | "auto";
  /** IPOP restarts (each doubles the population); 0 = a single CMA-ES run. */
  restarts: number;
  /** Generations without improvement that count as stuck (IPOP); null = 10 + ⌈30n/λ⌉. */
  patience: number | null;
  /** Hybrid searches: the share of the budget for the parameter-space phase (the rest: the layer path). */
  split: number;
  /**
   * A coarse first stage (coarse-search.ts): `share` of the budget searches one gene set per model
   * (layer_granularity 0, no filters, λ folded into the weights) with step `sigma0`; the full
   * genome then starts from its best. null = start from `genome.initial` (or the defaults).
   */
  coarse: CoarseSettings | null;
  /**
   * What OUT/best.yml is: `best` = the best sampled candidate; `mean` = CMA-ES's final distribution
   * mean (scored on the fitness split with one evaluation of the budget), the usual recommendation
   * under a noisy fitness — the best sample's score is inflated by the noise it was selected on.
   */
  recommend: "best" | "mean";
  /**
   * With `recommend: mean`: average the distribution means after the last this-many generations
   * (iterate or Polyak averaging; one IPOP run's generations only) and score that point instead of
   * the final mean. Averaging cancels part of the noise each generation's mean step follows. 1 = the final mean.
   */
  recommendWindow: number;
  /** CMA-ES's mean learning rate c_m in (0, 1] (pycma's CMA_cmean); 1 = the standard update. */
  meanRate: number;
  /** Mirrored sampling with pairwise selection (cma-es.ts `mirrored`). */
  mirrored: boolean;
}

export interface CoarseSettings {
  share: number;
  sigma0: number;
}

/** The coarse stage's default step: weights start at 1/models and may need to move by more than that. */
export const DEFAULT_COARSE_SIGMA0 = 0.3;

export interface SearchConfig {
  /** For a dfs search: only `models` is meaningful (merge_method is a placeholder); see `dfs`. */
  genome: GenomeDefinition;
  /** Set for `genome: {kind: dfs, ...}`: a layer-path (frankenmerge) search, dfs/dfs-genome.ts. */
  dfs?: DfsGenomeDefinition;
  /**
   * Set for `genome: {kind: hybrid, merge: {...}, dfs: {...}}`: `genome` is the parameter-space
   * phase; then a layer path over the PS-merged model and `dfs.models` (default: the merge's
   * models) — see hybrid-search.ts.
   */
  hybrid?: { dfs: DfsGenomeDefinition; dfsSigma0: number };
  fitness: FitnessSpec;
  search: SearchSettings;
  /** Reference merges scored like candidates: a mergekit YAML path or an inline config. */
  baselines: Baseline[];
  /**
   * A validation split, distinct from the fitness split: scored for the report (validation curve,
   * generalisation gap), never used to select. `every: best` scores each new best candidate,
   * `all` every candidate (for rank correlations between fitness and validation).
   */
  validation?: { spec: FitnessSpec; every: "best" | "all" };
}

export interface Baseline {
  name: string;
  /** Path of a mergekit YAML file, or undefined for an inline config. */
  file?: string;
  /** Inline config as YAML text. */
  yaml?: string;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function keys(obj: Obj, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new ConfigError(path ? `${path}.${k}` : k, `unknown key (valid: ${allowed.join(", ")})`);
  }
}

function num(v: unknown, path: string, opts: { int?: boolean; min?: number; positive?: boolean } = {}): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(path, `expected a number, got ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(v)) throw new ConfigError(path, `expected an integer, got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new ConfigError(path, `expected a value ≥ ${opts.min}, got ${v}`);
  if (opts.positive && !(v > 0)) throw new ConfigError(path, `expected a value > 0, got ${v}`);
  return v;
}

function str(v: unknown, path: string): string {
  if (typeof v !== "string" || v === "") throw new ConfigError(path, `expected a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function optBool(v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw new ConfigError(path, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

export const DEFAULT_SEARCH: SearchSettings = {
  strategy: "cmaes",
  budget: 300,
  timeLimit: null,
  seed: 0,
  population: null,
  sigma0: 1 / 6,
  mergeSeed: 0,
  covariance: "auto",
  restarts: 0,
  patience: null,
  split: 0.5,
  coarse: null,
  recommend: "best",
  recommendWindow: 1,
  meanRate: 1,
  mirrored: false,
};

export function parseSearchConfig(text: string, file: string): SearchConfig {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new ConfigError("", `parse ${file}: ${doc.errors[0].message}`);
  const root = yamlToJs(doc, file);
  if (!isObj(root)) throw new ConfigError("", `parse ${file}: expected a mapping with genome: and fitness:`);
  keys(root, "", ["genome", "fitness", "search", "baselines", "validation"]);
  const dfs = isObj(root.genome) && root.genome.kind === "dfs" ? parseDfsGenome(root.genome) : undefined;
  const hybridGenome = isObj(root.genome) && root.genome.kind === "hybrid" ? root.genome : undefined;
  const search = parseSettings(root.search);
  // DFS logits start at ±1: the weight genome's 1/6 step would almost never flip a layer.
  if (dfs && !(isObj(root.search) && root.search.sigma0 !== undefined)) search.sigma0 = DFS_DEFAULT_SIGMA0;
  let hybrid: SearchConfig["hybrid"];
  let genomeSection = root.genome;
  if (hybridGenome) {
    keys(hybridGenome, "genome", ["kind", "merge", "dfs", "dfs_sigma0"]);
    genomeSection = hybridGenome.merge;
    const merge = parseGenome(genomeSection);
    const d = hybridGenome.dfs ?? {};
    if (!isObj(d)) throw new ConfigError("genome.dfs", "expected a mapping of layer-path settings (repeats, max_layers, scaling, ...)");
    hybrid = {
      dfs: parseDfsGenome({ models: merge.models, ...d, kind: "dfs" }),
      dfsSigma0: hybridGenome.dfs_sigma0 === undefined ? DFS_DEFAULT_SIGMA0 : num(hybridGenome.dfs_sigma0, "genome.dfs_sigma0", { positive: true }),
    };
  }
  const config: SearchConfig = {
    genome: dfs ? { models: dfs.models, merge_method: "linear" } : parseGenome(genomeSection),
    fitness: parseFitness(root.fitness, !!dfs),
    search,
    baselines: root.baselines === undefined || root.baselines === null ? [] : list(root.baselines, "baselines").map(parseBaseline),
  };
  if (dfs) config.dfs = dfs;
  if (hybrid) config.hybrid = hybrid;
  if (root.validation !== undefined && root.validation !== null) config.validation = parseValidation(root.validation, config.fitness, !!dfs);
  checkCoarse(config);
  return config;
}

/** `validation:` — the fitness section's shape (graph and vocab default to the fitness ones) plus `every`. */
function parseValidation(v: unknown, fitness: FitnessSpec, generatedGraph: boolean): { spec: FitnessSpec; every: "best" | "all" } {
  if (!isObj(v)) throw new ConfigError("validation", "expected a mapping with tasks: (a split the search never selects by)");
  const every = v.every ?? "best";
  if (every !== "best" && every !== "all") throw new ConfigError("validation.every", `unknown value '${String(every)}' (known: best, all)`);
  const { every: _every, ...rest } = v;
  const withDefaults: Obj = { ...rest };
  if (!generatedGraph && withDefaults.graph === undefined && fitness.graph !== undefined) withDefaults.graph = fitness.graph;
  if (withDefaults.vocab === undefined && fitness.vocab !== undefined) withDefaults.vocab = fitness.vocab;
  if (withDefaults.batch_size === undefined) withDefaults.batch_size = fitness.batchSize;
  let spec: FitnessSpec;
  try {
    spec = parseFitness(withDefaults, generatedGraph);
  } catch (err) {
    if (err instanceof ConfigError && err.path.startsWith("fitness")) {
      throw new ConfigError(err.path.replace(/^fitness/, "validation"), err.message.slice(`config ${err.path}: `.length).replace(/fitness\./g, "validation."));
    }
    throw err;
  }
  // the split must be distinct: same (data, limit) as a fitness task would make the gap meaningless
  const fitKeys = new Set(
    fitness.tasks.map((t) =>
      t.kind === "command" ? `command:${t.command}` : t.kind === "scorer" ? `scorer:${t.scorer}` : `${resolve(t.data!)}#${t.limit ?? "all"}`,
    ),
  );
  spec.tasks.forEach((t, i) => {
    const key = t.kind === "command" ? `command:${t.command}` : t.kind === "scorer" ? `scorer:${t.scorer}` : `${resolve(t.data!)}#${t.limit ?? "all"}`;
    if (fitKeys.has(key)) {
      throw new ConfigError(
        `validation.tasks[${i}]`,
        `uses the same ${t.kind === "command" ? "command" : `data '${t.data}'`} as a fitness task; a validation split must be distinct from the fitness split`,
      );
    }
  });
  return { spec, every };
}

function list(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw new ConfigError(path, `expected a list, got ${JSON.stringify(v)}`);
  return v;
}

function parseGenome(v: unknown): GenomeDefinition {
  if (!isObj(v)) throw new ConfigError("genome", "missing; expected a mapping with models and merge_method (mergekit-evolve's genome section)");
  keys(v, "genome", [
    "kind",
    "models",
    "merge_method",
    "base_model",
    "tokenizer_source",
    "layer_granularity",
    "normalize",
    "allow_negative_weights",
    "filters",
    "smooth",
    "per_model_lambda",
    "initial",
    "per_model",
    "fixed",
  ]);
  if (v.kind !== undefined && v.kind !== "merge") throw new ConfigError("genome.kind", `unknown genome kind '${String(v.kind)}' (known: merge, dfs)`);
  const method = str(v.merge_method, "genome.merge_method");
  const known = Object.keys(METHOD_PARAMS);
  if (!known.includes(method)) throw new ConfigError("genome.merge_method", `unknown merge method '${method}' for evolution (known: ${known.join(", ")})`);
  const def: GenomeDefinition = {
    models: list(v.models, "genome.models").map((m, i) => str(m, `genome.models[${i}]`)),
    merge_method: method as GenomeMergeMethod,
  };
  if (v.base_model !== undefined && v.base_model !== null) def.base_model = str(v.base_model, "genome.base_model");
  if (v.tokenizer_source !== undefined && v.tokenizer_source !== null) def.tokenizer_source = str(v.tokenizer_source, "genome.tokenizer_source");
  if (v.layer_granularity !== undefined && v.layer_granularity !== null)
    def.layer_granularity = num(v.layer_granularity, "genome.layer_granularity", { int: true, min: 0 });
  const normalize = optBool(v.normalize, "genome.normalize");
  if (normalize !== undefined) def.normalize = normalize;
  def.allow_negative_weights = optBool(v.allow_negative_weights, "genome.allow_negative_weights") ?? false;
  def.smooth = optBool(v.smooth, "genome.smooth") ?? false;
  if (v.filters !== undefined && v.filters !== null) def.filters = list(v.filters, "genome.filters").map((f, i) => str(f, `genome.filters[${i}]`));
  def.per_model_lambda = optBool(v.per_model_lambda, "genome.per_model_lambda") ?? false;
  if (v.initial !== undefined && v.initial !== null) {
    if (!isObj(v.initial))
      throw new ConfigError("genome.initial", "expected a mapping of gene kind to x0, e.g. {weight: 0.5, density: 0.7} or {weight: [0.3, 1]} (one per model)");
    def.initial = Object.fromEntries(
      Object.entries(v.initial).map(([k, x]) => [k, Array.isArray(x) ? x.map((y, i) => num(y, `genome.initial.${k}[${i}]`)) : num(x, `genome.initial.${k}`)]),
    );
  }
  if (v.per_model !== undefined && v.per_model !== null) def.per_model = list(v.per_model, "genome.per_model").map((k, i) => str(k, `genome.per_model[${i}]`));
  if (v.fixed !== undefined && v.fixed !== null) {
    if (!isObj(v.fixed))
      throw new ConfigError("genome.fixed", "expected a mapping of gene kind to a value, e.g. {gamma: 0.001} or {density: [0.5, 1]} (one per model)");
    def.fixed = Object.fromEntries(
      Object.entries(v.fixed).map(([k, x]) => [k, Array.isArray(x) ? x.map((y, i) => num(y, `genome.fixed.${k}[${i}]`)) : num(x, `genome.fixed.${k}`)]),
    );
  }
  return def;
}

const TASK_KINDS: readonly FitnessTaskKind[] = ["accuracy", "likelihood", "entropy", "command", "scorer"];
const LIKELIHOOD_MEASURES: readonly LikelihoodMeasure[] = ["log_prob", "answer_prob"];

/** `generatedGraph`: the search builds its graphs (dfs), so fitness.graph must not be given. */
function parseFitness(v: unknown, generatedGraph = false): FitnessSpec {
  if (!isObj(v)) throw new ConfigError("fitness", "missing; expected a mapping with tasks: (see the README's evolve section)");
  keys(v, "fitness", ["graph", "vocab", "batch_size", "threads", "limit", "objective", "tasks"]);
  const objective = v.objective ?? "weighted";
  if (objective !== "weighted" && objective !== "pareto")
    throw new ConfigError("fitness.objective", `unknown objective '${String(objective)}' (known: weighted, pareto)`);
  const limit = v.limit === undefined || v.limit === null ? undefined : num(v.limit, "fitness.limit", { int: true, min: 1 });
  const tasks: FitnessTask[] = list(v.tasks, "fitness.tasks").map((t, i) => {
    const p = `fitness.tasks[${i}]`;
    if (!isObj(t)) throw new ConfigError(p, "expected a mapping with name and kind");
    keys(t, p, ["name", "kind", "data", "command", "scorer", "key", "weight", "limit", "measure"]);
    const kind = (t.kind ?? "accuracy") as FitnessTaskKind;
    if (!TASK_KINDS.includes(kind)) throw new ConfigError(`${p}.kind`, `unknown kind '${String(kind)}' (known: ${TASK_KINDS.join(", ")})`);
    if (t.measure !== undefined && kind !== "likelihood")
      throw new ConfigError(`${p}.measure`, `only a likelihood task has a measure (this task's kind is ${kind})`);
    const task: FitnessTask = { name: str(t.name, `${p}.name`), kind, weight: t.weight === undefined ? 1 : num(t.weight, `${p}.weight`, { min: 0 }) };
    if (kind === "command") {
      task.command = str(t.command, `${p}.command`);
      if (t.key !== undefined) task.key = str(t.key, `${p}.key`);
    } else if (kind === "scorer") {
      const name = str(t.scorer, `${p}.scorer`);
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new ConfigError(`${p}.scorer`, `scorer name '${name}' may only use letters, digits, '_' and '-'`);
      task.scorer = name;
      if (t.key !== undefined) task.key = str(t.key, `${p}.key`);
    } else {
      if (t.measure !== undefined) {
        if (!LIKELIHOOD_MEASURES.includes(t.measure as LikelihoodMeasure))
          throw new ConfigError(`${p}.measure`, `unknown measure '${String(t.measure)}' (known: ${LIKELIHOOD_MEASURES.join(", ")})`);
        task.measure = t.measure as LikelihoodMeasure;
      }
      task.data = str(t.data, `${p}.data`);
      const l = t.limit === undefined || t.limit === null ? limit : num(t.limit, `${p}.limit`, { int: true, min: 1 });
      if (l !== undefined) task.limit = l;
    }
    return task;
  });
  if (tasks.length === 0) throw new ConfigError("fitness.tasks", "expected at least one task");
  const names = new Set<string>();
  for (const t of tasks) {
    if (names.has(t.name)) throw new ConfigError("fitness.tasks", `task name '${t.name}' is used twice; names must be unique`);
    names.add(t.name);
  }
  const needsGraph = tasks.some(isGraphTask);
  const spec: FitnessSpec = {
    batchSize: v.batch_size === undefined ? 500 : num(v.batch_size, "fitness.batch_size", { int: true, min: 1 }),
    objective,
    tasks,
  };
  if (v.threads !== undefined) spec.threads = num(v.threads, "fitness.threads", { int: true, min: 1 });
  if (generatedGraph && v.graph !== undefined) {
    throw new ConfigError("fitness.graph", "not used by a dfs search, which generates a graph per layer count from the models' config.json; remove it");
  }
  if (needsGraph && generatedGraph) spec.vocab = str(v.vocab, "fitness.vocab");
  else if (needsGraph) {
    spec.graph = str(v.graph, "fitness.graph");
    spec.vocab = str(v.vocab, "fitness.vocab");
  }
  return spec;
}

function parseSettings(v: unknown): SearchSettings {
  if (v === undefined || v === null) return { ...DEFAULT_SEARCH };
  if (!isObj(v)) throw new ConfigError("search", "expected a mapping");
  keys(v, "search", [
    "strategy",
    "budget",
    "time_limit",
    "seed",
    "population",
    "sigma0",
    "merge_seed",
    "covariance",
    "restarts",
    "patience",
    "split",
    "coarse",
    "recommend",
    "recommend_window",
    "mean_rate",
    "mirrored",
  ]);
  const s = { ...DEFAULT_SEARCH };
  if (v.strategy !== undefined) {
    if (v.strategy !== "cmaes" && v.strategy !== "random")
      throw new ConfigError("search.strategy", `unknown strategy '${String(v.strategy)}' (known: cmaes, random)`);
    s.strategy = v.strategy;
  }
  if (v.budget !== undefined) s.budget = num(v.budget, "search.budget", { int: true, min: 1 });
  if (v.time_limit !== undefined && v.time_limit !== null) s.timeLimit = num(v.time_limit, "search.time_limit", { positive: true });
  if (v.seed !== undefined) s.seed = num(v.seed, "search.seed", { int: true, min: 0 });
  if (v.population !== undefined && v.population !== null) s.population = num(v.population, "search.population", { int: true, min: 2 });
  if (v.sigma0 !== undefined) s.sigma0 = num(v.sigma0, "search.sigma0", { positive: true });
  if (v.merge_seed !== undefined) s.mergeSeed = num(v.merge_seed, "search.merge_seed", { int: true, min: 0 });
  if (v.covariance !== undefined) {
    if (v.covariance !== "full" && v.covariance !== "diagonal" && v.covariance !== "auto")
      throw new ConfigError("search.covariance", `unknown covariance '${String(v.covariance)}' (known: full, diagonal, auto)`);
    s.covariance = v.covariance;
  }
  if (v.restarts !== undefined) s.restarts = num(v.restarts, "search.restarts", { int: true, min: 0 });
  if (v.patience !== undefined && v.patience !== null) s.patience = num(v.patience, "search.patience", { int: true, min: 1 });
  if (v.split !== undefined) {
    s.split = num(v.split, "search.split", { positive: true });
    if (s.split >= 1) throw new ConfigError("search.split", `expected the parameter-space share of the budget in (0, 1), got ${s.split}`);
  }
  if (v.coarse !== undefined && v.coarse !== null) s.coarse = parseCoarse(v.coarse);
  if (v.recommend !== undefined) {
    if (v.recommend !== "best" && v.recommend !== "mean")
      throw new ConfigError("search.recommend", `unknown value '${String(v.recommend)}' (known: best, mean)`);
    if (v.recommend === "mean" && s.strategy !== "cmaes")
      throw new ConfigError("search.recommend", "mean needs strategy cmaes (random search has no distribution mean); use best");
    s.recommend = v.recommend;
  }
  if (v.recommend_window !== undefined) {
    s.recommendWindow = num(v.recommend_window, "search.recommend_window", { int: true, min: 1 });
    if (s.recommendWindow > 1 && s.recommend !== "mean")
      throw new ConfigError("search.recommend_window", "averaging the last generations' means needs recommend: mean; add it or drop recommend_window");
  }
  if (v.mean_rate !== undefined) {
    s.meanRate = num(v.mean_rate, "search.mean_rate", { positive: true });
    if (s.meanRate > 1) throw new ConfigError("search.mean_rate", `expected CMA-ES's mean learning rate in (0, 1], got ${s.meanRate}`);
    if (s.strategy !== "cmaes") throw new ConfigError("search.mean_rate", "needs strategy cmaes (random search has no distribution mean); drop it");
  }
  if (v.mirrored !== undefined) {
    if (typeof v.mirrored !== "boolean") throw new ConfigError("search.mirrored", `expected true or false, got ${JSON.stringify(v.mirrored)}`);
    if (v.mirrored && s.strategy !== "cmaes")
      throw new ConfigError("search.mirrored", "needs strategy cmaes (random search samples no mirrored pairs); drop it");
    s.mirrored = v.mirrored;
  }
  return s;
}

function parseCoarse(v: unknown): CoarseSettings {
  if (!isObj(v)) throw new ConfigError("search.coarse", `expected a mapping like {share: 0.2, sigma0: 0.3}, got ${JSON.stringify(v)}`);
  keys(v, "search.coarse", ["share", "sigma0"]);
  const share = num(v.share, "search.coarse.share", { positive: true });
  if (share >= 1) throw new ConfigError("search.coarse.share", `expected the coarse stage's share of the budget in (0, 1), got ${share}`);
  const sigma0 = v.sigma0 === undefined ? DEFAULT_COARSE_SIGMA0 : num(v.sigma0, "search.coarse.sigma0", { positive: true });
  return { share, sigma0 };
}

/** `search.coarse` needs a merge genome with more than one gene set per model (else the coarse stage is the search itself). */
function checkCoarse(config: SearchConfig): void {
  if (!config.search.coarse) return;
  if (config.dfs) throw new ConfigError("search.coarse", "not used by a layer-path (dfs) search, which has no per-model weights; remove it");
  const g = config.genome;
  if ((g.layer_granularity ?? 0) === 0 && !(g.filters && g.filters.length > 0) && !g.per_model_lambda) {
    throw new ConfigError(
      "search.coarse",
      "the genome already has one gene set per model (layer_granularity 0, no filters); remove coarse or refine the genome",
    );
  }
}

function parseBaseline(v: unknown, i: number): Baseline {
  const p = `baselines[${i}]`;
  if (typeof v === "string") return { name: str(v, p), file: v };
  if (!isObj(v)) throw new ConfigError(p, "expected a mergekit YAML path or {name, config}");
  keys(v, p, ["name", "config"]);
  if (!isObj(v.config)) throw new ConfigError(`${p}.config`, "expected an inline mergekit config (a mapping)");
  return { name: str(v.name, `${p}.name`), yaml: stringify(v.config) };
}
