/**
 * mergekit-evolve's genome: how a flat genotype vector (what CMA-ES searches over) becomes a
 * mergekit merge config. Mirrors mergekit/evo/genome.py (ModelGenome) so a genotype found here
 * means the same merge as it would under mergekit-evolve:
 *
 * - the genotype is a row-major [layerGroups][models][paramSets][params] array, where
 *   layerGroups = numLayers / layer_granularity (1 when the granularity is 0), paramSets =
 *   filters.length + 1 (one gene set per filter plus a catch-all), and params come from
 *   METHOD_PARAMS (weight first); mergeloom's extensions append one gene per model for each
 *   `per_model` kind, then one λ per model (`per_model_lambda`), and leave `fixed` kinds out;
 * - weight (and t) go through abs() unless allow_negative_weights; density goes through abs()
 *   and is clamped to [0, 1];
 * - `smooth` emits one `models:` entry per model whose parameters are gradients over the layer
 *   groups (mergekit interpolates them across layers); otherwise one slice per layer group;
 * - slerp picks, per layer group, the two models with the largest raw weight genes; t is the
 *   softmax share of the runner-up and the winner is the slice's base model;
 * - `normalize` defaults to true for linear, ties and dare_ties; the config always carries
 *   `int8_mask: true` and `dtype: bfloat16`, as mergekit-evolve's does.
 *
 * The config object has the shape of mergekit's `MergeConfiguration.to_yaml()` output (unset
 * fields left out, including a catch-all filter), and `mergeConfigToYaml` writes it with sorted
 * keys and flow-style number lists, as mergekit's dumper does.
 */
import { Document, isSeq, visit } from "yaml";
import { ConfigError } from "@mergeloom/engine/errors";
import type { Rng } from "./rng.js";

/** Per-model parameters each method's genes encode, in gene order (weight is always first). */
export const METHOD_PARAMS = {
  linear: ["weight"],
  task_arithmetic: ["weight"],
  ties: ["weight", "density"],
  dare_ties: ["weight", "density"],
  slerp: ["t"],
  // mergeloom extensions (mergekit-evolve stops at the five above)
  dare_linear: ["weight", "density"],
  della: ["weight", "density", "epsilon"],
  della_linear: ["weight", "density", "epsilon"],
  breadcrumbs: ["weight", "density", "gamma"],
  breadcrumbs_ties: ["weight", "density", "gamma"],
} as const;

/** Methods whose `normalize` defaults to true in a genome (mergekit-evolve's three, plus della's own default). */
const NORMALIZE_BY_DEFAULT = ["ties", "dare_ties", "linear", "della"];
/** Methods that merge task vectors against base_model. */
const NEEDS_BASE = ["ties", "dare_ties", "task_arithmetic", "dare_linear", "della", "della_linear", "breadcrumbs", "breadcrumbs_ties"];

/** x0 of each gene kind (mergekit-evolve: weight 1/models, density 1); `initial:` overrides them. */
export const DEFAULT_INITIAL: Record<string, number> = { density: 1, epsilon: 0.15, gamma: 0.01, t: 1, lambda: 1 };

export type GenomeMergeMethod = keyof typeof METHOD_PARAMS;

/** mergekit-evolve's default initial step size (its --sigma0). */
export const DEFAULT_SIGMA0 = 1 / 6;

/** The `genome:` section of a mergekit-evolve config; field names as in its YAML. */
export interface GenomeDefinition {
  models: string[];
  merge_method: GenomeMergeMethod;
  base_model?: string | null;
  tokenizer_source?: string | null;
  /** Layers per group; 0 = one group spanning every layer. */
  layer_granularity?: number;
  /** null/undefined = the method's default (true for linear, ties, dare_ties). */
  normalize?: boolean | null;
  allow_negative_weights?: boolean;
  /** Tensor-name substrings that get their own genes (e.g. ["self_attn", "mlp"]). */
  filters?: string[] | null;
  smooth?: boolean;
  /**
   * mergeloom extension: one more gene per model, λ_m, that multiplies all of that model's weights
   * (|λ_m| unless allow_negative_weights). Redundant with the per-group weights, but lets CMA-ES
   * move one expert's whole contribution in one direction.
   */
  per_model_lambda?: boolean;
  /**
   * mergeloom extension: x0 per gene kind, e.g. `{weight: 0.5, density: 0.6}` (defaults: weight 1/models,
   * see DEFAULT_INITIAL), or one value per model (`{weight: [0.35, 0.35, 0.95, 0.8]}`) to start from a
   * hand-picked merge.
   */
  initial?: Record<string, number | number[]> | null;
  /**
   * mergeloom extension: gene kinds with one gene per model, shared by every layer group and
   * filter set (e.g. `[density]`: one trimming level per expert while weights stay per layer).
   */
  per_model?: string[] | null;
  /**
   * mergeloom extension: gene kinds that are not searched but set, as a number or one per model
   * (e.g. `{gamma: 0.001}`: breadcrumbs' outlier share, whose scale is far below σ0's).
   */
  fixed?: Record<string, number | number[]> | null;
}

/** A mergekit parameter value: scalar, gradient, or filter-conditioned list. */
export type ParameterSetting = number | number[] | { filter?: string; value: number | number[] }[];

export interface MergeConfigSource {
  model: string;
  layer_range: [number, number];
  parameters?: Record<string, ParameterSetting>;
}

export interface MergeConfigSlice {
  sources: MergeConfigSource[];
  base_model?: string;
  parameters?: Record<string, ParameterSetting>;
}

export interface MergeConfigModel {
  model: string;
  parameters?: Record<string, ParameterSetting>;
}

/** A mergekit merge config as a plain object (the subset mergekit-evolve emits). */
export interface MergeConfig {
  merge_method: GenomeMergeMethod;
  slices?: MergeConfigSlice[];
  models?: MergeConfigModel[];
  parameters: { normalize: boolean; int8_mask: true };
  dtype: "bfloat16";
  base_model?: string;
  tokenizer_source?: string;
}

interface Shape {
  groups: number;
  step: number;
  models: number;
  sets: number;
  /** Every per-model parameter of the method, in METHOD_PARAMS order. */
  params: readonly string[];
  /** Those with a gene per layer group × model × filter set. */
  cell: readonly string[];
  /** Those with one gene per model (`per_model`). */
  perModel: readonly string[];
}

/** The method's gene kinds that are searched (not `fixed`), in gene order: the coarse stage's layout too. */
export function searchedParams(def: GenomeDefinition): string[] {
  return METHOD_PARAMS[def.merge_method].filter((n) => !Object.hasOwn(def.fixed ?? {}, n));
}

/** `per_model`/`fixed` entries: gene kinds of the method (not t), each in at most one of them. */
function validateGeneScopes(def: GenomeDefinition): void {
  const params: readonly string[] = METHOD_PARAMS[def.merge_method];
  const check = (field: string, k: string) => {
    if (def.merge_method === "slerp") throw new ConfigError(`genome.${field}`, "not supported for slerp (t picks the models per slice); remove it");
    if (!params.includes(k)) throw new ConfigError(`genome.${field}.${k}`, `not a gene of ${def.merge_method} (genes: ${params.join(", ")})`);
  };
  for (const k of def.per_model ?? []) {
    check("per_model", k);
    if (Object.hasOwn(def.fixed ?? {}, k))
      throw new ConfigError(`genome.per_model.${k}`, "also in genome.fixed; a gene kind is either searched per model or fixed");
  }
  for (const [k, v] of Object.entries(def.fixed ?? {})) {
    check("fixed", k);
    if (Object.hasOwn(def.initial ?? {}, k)) throw new ConfigError(`genome.initial.${k}`, "is fixed (genome.fixed), so it has no x0; remove one of them");
    const ok = Array.isArray(v) ? v.length === def.models.length && v.every(Number.isFinite) : Number.isFinite(v);
    if (!ok)
      throw new ConfigError(`genome.fixed.${k}`, `expected a number or a list of ${def.models.length} numbers (one per model), got ${JSON.stringify(v)}`);
  }
  if (searchedParams(def).length === 0) throw new ConfigError("genome.fixed", "fixes every gene kind, so nothing is left to search");
}

/** Checks a definition against mergekit-evolve's rules; throws ConfigError naming the field. */
export function validateGenomeDefinition(def: GenomeDefinition, numLayers: number): void {
  const known = Object.keys(METHOD_PARAMS);
  if (!Object.hasOwn(METHOD_PARAMS, def.merge_method)) {
    throw new ConfigError("genome.merge_method", `unknown merge method '${String(def.merge_method)}' for evolution (known: ${known.join(", ")})`);
  }
  if (!Array.isArray(def.models) || def.models.length === 0 || !def.models.every((m) => typeof m === "string" && m)) {
    throw new ConfigError("genome.models", "expected a non-empty list of model names");
  }
  if (NEEDS_BASE.includes(def.merge_method) && !def.base_model) {
    throw new ConfigError("genome.base_model", `required for merge method '${def.merge_method}'; set base_model`);
  }
  if (def.merge_method === "slerp") {
    if (def.smooth) throw new ConfigError("genome.smooth", "not supported for slerp; set smooth: false or pick another method");
    if (def.filters && def.filters.length > 0) {
      throw new ConfigError("genome.filters", "tensor name filters are not supported for slerp; remove filters or pick another method");
    }
    if (def.models.length < 2) throw new ConfigError("genome.models", "slerp needs at least 2 models");
    if (def.per_model_lambda) throw new ConfigError("genome.per_model_lambda", "not meaningful for slerp (t is a share, not a weight); remove it");
  }
  for (const k of Object.keys(def.initial ?? {})) {
    const kinds: readonly string[] = [...METHOD_PARAMS[def.merge_method], ...(def.per_model_lambda ? ["lambda"] : [])];
    if (!kinds.includes(k)) throw new ConfigError(`genome.initial.${k}`, `not a gene of ${def.merge_method} (genes: ${kinds.join(", ")})`);
    const v = def.initial![k];
    if (Array.isArray(v)) {
      if (v.length !== def.models.length || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
        throw new ConfigError(`genome.initial.${k}`, `expected a number or a list of ${def.models.length} numbers (one per model), got ${JSON.stringify(v)}`);
      }
    } else if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(`genome.initial.${k}`, `expected a number, got ${String(v)}`);
  }
  validateGeneScopes(def);
  if (def.filters && !def.filters.every((f) => typeof f === "string" && f)) {
    throw new ConfigError("genome.filters", "expected a list of non-empty tensor-name substrings");
  }
  const g = def.layer_granularity ?? 0;
  if (!Number.isInteger(g) || g < 0) {
    throw new ConfigError("genome.layer_granularity", `expected an integer ≥ 0, got ${g}`);
  }
  if (!Number.isInteger(numLayers) || numLayers < 1) {
    throw new ConfigError("genome", `number of layers must be a positive integer, got ${numLayers}`);
  }
  if (g > 0 && numLayers % g !== 0) {
    throw new ConfigError("genome.layer_granularity", `${numLayers} layers are not a multiple of layer_granularity ${g}; pick a divisor of ${numLayers}`);
  }
}

function shapeOf(def: GenomeDefinition, numLayers: number): Shape {
  validateGenomeDefinition(def, numLayers);
  const g = def.layer_granularity ?? 0;
  return {
    groups: g > 0 ? numLayers / g : 1,
    step: g > 0 ? g : numLayers,
    models: def.models.length,
    sets: (def.filters?.length ?? 0) + 1,
    params: METHOD_PARAMS[def.merge_method],
    cell: searchedParams(def).filter((n) => !(def.per_model ?? []).includes(n)),
    perModel: searchedParams(def).filter((n) => (def.per_model ?? []).includes(n)),
  };
}

/**
 * Number of genes: layer groups × models × (filters + 1) × searched per-cell parameters, then
 * models × `per_model` kinds, then models with per_model_lambda.
 */
export function genotypeLength(def: GenomeDefinition, numLayers: number): number {
  const s = shapeOf(def, numLayers);
  return s.groups * s.models * s.sets * s.cell.length + s.models * s.perModel.length + (def.per_model_lambda ? s.models : 0);
}

/**
 * mergekit-evolve's x0: every weight gene 1/models, every other gene (density) 1. With `random`,
 * every gene is uniform in [0, 1) instead (its `random_init`).
 */
export function initialGenotype(def: GenomeDefinition, numLayers: number, random?: Rng): number[] {
  const s = shapeOf(def, numLayers);
  const out: number[] = [];
  const cells = s.groups * s.models * s.sets;
  // cell c = (group · models + model) · sets + set
  for (let c = 0; c < cells; c++) {
    for (const name of s.cell) out.push(random ? random.next() : initialGeneValue(def, name, Math.floor(c / s.sets) % s.models));
  }
  for (let m = 0; m < s.models; m++) for (const name of s.perModel) out.push(random ? random.next() : initialGeneValue(def, name, m));
  if (def.per_model_lambda) for (let m = 0; m < s.models; m++) out.push(random ? random.next() : initialGeneValue(def, "lambda", m));
  return out;
}

/** x0 of gene kind `name` (weight, density, …, lambda) for model index `model`: `initial:` or the default. */
export function initialGeneValue(def: GenomeDefinition, name: string, model: number): number {
  const v = def.initial?.[name];
  if (v === undefined || v === null) return name === "weight" ? 1 / def.models.length : DEFAULT_INITIAL[name];
  return Array.isArray(v) ? v[model] : v;
}

/** The genotype as a config: see the module comment for the mapping. */
export function genotypeToMergeConfig(def: GenomeDefinition, genotype: number[], numLayers: number): MergeConfig {
  const s = shapeOf(def, numLayers);
  const cellsLength = s.groups * s.models * s.sets * s.cell.length;
  const perModelLength = s.models * s.perModel.length;
  const expected = cellsLength + perModelLength + (def.per_model_lambda ? s.models : 0);
  if (genotype.length !== expected || !genotype.every(Number.isFinite)) {
    throw new ConfigError(
      "genotype",
      `expected ${expected} finite genes (${s.groups} layer groups × ${s.models} models × ${s.sets} filter sets × ${s.cell.length} params` +
        `${perModelLength ? ` + ${s.models} models × ${s.perModel.length} per-model params` : ""}${def.per_model_lambda ? ` + ${s.models} λ` : ""}), got ${genotype.length}`,
    );
  }
  // the raw value of parameter `name` (METHOD_PARAMS index p) for a cell: its gene, its model's gene, or the fixed value
  const gene = (g: number, m: number, set: number, p: number): number => {
    const name = s.params[p];
    const c = s.cell.indexOf(name);
    if (c >= 0) return genotype[((g * s.models + m) * s.sets + set) * s.cell.length + c];
    const pm = s.perModel.indexOf(name);
    if (pm >= 0) return genotype[cellsLength + m * s.perModel.length + pm];
    const v = def.fixed![name];
    return Array.isArray(v) ? v[m] : v;
  };
  const baseOutside = def.base_model && !def.models.includes(def.base_model) ? def.base_model : null;
  const layerRange = (g: number): [number, number] => [g * s.step, (g + 1) * s.step];

  const config: MergeConfig = {
    merge_method: def.merge_method,
    parameters: {
      normalize: def.normalize ?? NORMALIZE_BY_DEFAULT.includes(def.merge_method),
      int8_mask: true,
    },
    dtype: "bfloat16",
  };

  if (def.merge_method === "slerp") {
    config.slices = [];
    for (let g = 0; g < s.groups; g++) {
      // the two largest raw genes; on a tie the lower model index wins
      const order = def.models.map((_, m) => m).sort((a, b) => gene(g, b, 0, 0) - gene(g, a, 0, 0) || a - b);
      const [first, second] = order;
      // softmax([v0, v1])[1], computed from the larger value as torch does
      const e = Math.exp(gene(g, second, 0, 0) - gene(g, first, 0, 0));
      const t = e / (1 + e);
      const sources: MergeConfigSource[] = [first, second].map((m) => ({ model: def.models[m], layer_range: layerRange(g) }));
      if (def.tokenizer_source) {
        sources[0].parameters = { weight: 1 - t };
        sources[1].parameters = { weight: t };
      }
      if (baseOutside) sources.push({ model: baseOutside, layer_range: layerRange(g) });
      config.slices.push({ sources, base_model: def.models[first], parameters: { t } });
    }
  } else {
    const signed = (v: number): number => (def.allow_negative_weights ? v : Math.abs(v));
    const lambda = (m: number): number => (def.per_model_lambda ? signed(genotype[cellsLength + perModelLength + m]) : 1);
    const clamp01 = (v: number): number => Math.min(1, Math.max(0, Math.abs(v)));
    // phenotype value of one gene (the transforms are listed in coordinator/evolve/README.md)
    const value = (g: number, m: number, set: number, p: number): number => {
      const v = gene(g, m, set, p);
      const name = s.params[p];
      if (name === "density") return clamp01(v);
      if (name === "weight") return signed(v) * lambda(m);
      // della needs density ± epsilon inside (0, 1); breadcrumbs keeps density + gamma ≤ 1
      const density = clamp01(gene(g, m, set, 1));
      if (name === "epsilon") return Math.min(Math.abs(v), Math.min(density, 1 - density) / 2);
      return Math.min(Math.abs(v), 1 - density); // gamma
    };
    const filters = def.filters ?? [];
    // one model's parameters, from `pick(set, p)` (a scalar per slice or a gradient when smooth)
    const paramsFor = (pick: (set: number, p: number) => number | number[]): Record<string, ParameterSetting> => {
      const out: Record<string, ParameterSetting> = {};
      s.params.forEach((name, p) => {
        // a per_model or fixed kind has one value for all filter sets: a scalar
        if (s.sets > 1 && s.cell.includes(name)) {
          out[name] = Array.from({ length: s.sets }, (_, set) =>
            set < filters.length ? { filter: filters[set], value: pick(set, p) } : { value: pick(set, p) },
          );
        } else {
          out[name] = pick(0, p);
        }
      });
      return out;
    };
    if (def.smooth) {
      const unpack = (v: number[]): number | number[] => (v.length === 1 ? v[0] : v);
      config.models = def.models.map((model, m) => ({
        model,
        parameters: paramsFor((set, p) => unpack(Array.from({ length: s.cell.includes(s.params[p]) ? s.groups : 1 }, (_, g) => value(g, m, set, p)))),
      }));
      if (baseOutside) config.models.push({ model: baseOutside });
    } else {
      config.slices = [];
      for (let g = 0; g < s.groups; g++) {
        const sources: MergeConfigSource[] = def.models.map((model, m) => ({
          model,
          layer_range: layerRange(g),
          parameters: paramsFor((set, p) => value(g, m, set, p)),
        }));
        if (baseOutside) sources.push({ model: baseOutside, layer_range: layerRange(g) });
        config.slices.push({ sources });
      }
    }
  }
  if (def.base_model) config.base_model = def.base_model;
  if (def.tokenizer_source) config.tokenizer_source = def.tokenizer_source;
  return config;
}

/**
 * YAML laid out as mergekit (PyYAML) writes it: keys sorted, lists of numbers in flow style
 * (`[0, 4]`), all else block style with unindented sequences. Numbers use JS's shortest
 * round-trip form (`1` where PyYAML writes `1.0`), which parses to the same double.
 */
export function mergeConfigToYaml(config: object): string {
  const doc = new Document(config, { sortMapEntries: true });
  visit(doc, {
    Seq(_, node) {
      if (isSeq(node) && node.items.every((item) => typeof (item as { value?: unknown }).value === "number")) {
        node.flow = true;
      }
    },
  });
  return doc.toString({ lineWidth: 0, indentSeq: false, flowCollectionPadding: false });
}

/** A YAML text with `header`'s lines as `#` comments above it (no header: the text as is). */
export function withCommentHeader(body: string, header?: string): string {
  if (!header) return body;
  return (
    header
      .split("\n")
      .map((l) => `# ${l}`.trimEnd())
      .join("\n") +
    "\n" +
    body
  );
}
