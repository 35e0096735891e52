/**
 * The data-flow-space (DFS) genome of Akiba et al. 2024 ("Evolutionary Optimization of Model
 * Merging Recipes", arXiv 2403.13187, section 3.2): a layer path through the concatenated layers
 * of M source layers, expressed as a plain mergekit passthrough `slices:` config.
 *
 * Genotype = [T indicator logits][T scale genes (when `scaling`)], T = repeats × M, where M is
 * the total number of layers over the models (model 0's layers, then model 1's, ...). Slot k
 * stands for concatenated layer k mod M and is on the path iff its logit > 0 (the paper's
 * CMA-ES-over-logits with a threshold). The path keeps slot order, so with repeats r the path can
 * revisit layers up to r times.
 *
 * Bounds and repairs, both deterministic so a genotype means one model:
 * - more than `max_layers` included slots: the `max_layers` with the largest logits stay (ties:
 *   the earlier slot), still in slot order;
 * - no included slot: the slot with the largest logit is included (a model needs one layer).
 *
 * Scaling (differs from the paper, see the README): the paper's W[i, j] scales the hidden state
 * passed from layer i to layer j. A per-layer factor in front of a Llama layer is a no-op on the
 * layer's own branches, because both of its RMSNorms are scale-invariant, and it can only be
 * folded into weights by rescaling the whole residual stream. What is implementable as weights is
 * scaling what the layer *adds* to the stream: slot k's gene g gives s = exp(scale_step·g)
 * (rounded to 4 decimals), applied to the layer's o_proj and down_proj weights, so the layer
 * computes h + s·attn(h) then h + s·mlp(h). One factor per slot (T genes), not per layer pair.
 */
import { ConfigError } from "@mergeloom/engine/errors";
import { mergeConfigToYaml, withCommentHeader, type MergeConfigSlice } from "../genome.js";

export type DfsInit = "first_model" | "all" | "zeros";

/** `genome: {kind: dfs, ...}` of SEARCH.yml. */
export interface DfsGenomeDefinition {
  kind: "dfs";
  models: string[];
  /** r: how many times the concatenated layer list is repeated in the slot sequence. */
  repeats: number;
  /** Longest path (layers); null = T. */
  max_layers: number | null;
  /** Per-slot residual-branch scale genes. */
  scaling: boolean;
  /** s = exp(scale_step · gene). */
  scale_step: number;
  /** x0: model 0's layers once (default), every model's layers once (plain passthrough), or all logits 0. */
  init: DfsInit;
  /** |x0 logit| for first_model/all. */
  init_logit: number;
}

/** One layer on the path. */
export interface PathLayer {
  /** Index into `models`. */
  model: number;
  /** Layer index inside that model. */
  layer: number;
  /** Residual-branch scale (1 = untouched). */
  scale: number;
}

export const DFS_DEFAULTS = { repeats: 2, scaling: true, scale_step: 0.2, init: "first_model" as DfsInit, init_logit: 1 };
/** Default step size for DFS searches: logits start at ±1, so flips need steps of that order. */
export const DFS_DEFAULT_SIGMA0 = 1;

const KEYS = ["kind", "models", "repeats", "max_layers", "scaling", "scale_step", "init", "init_logit"];
const INITS: readonly DfsInit[] = ["first_model", "all", "zeros"];

/** Parses the `genome:` mapping of a DFS search (kind: dfs); unknown keys are errors. */
export function parseDfsGenome(v: Record<string, unknown>): DfsGenomeDefinition {
  for (const k of Object.keys(v)) if (!KEYS.includes(k)) throw new ConfigError(`genome.${k}`, `unknown key for a dfs genome (valid: ${KEYS.join(", ")})`);
  if (!Array.isArray(v.models) || v.models.length === 0) throw new ConfigError("genome.models", "expected a non-empty list of model paths");
  const models = v.models.map((m, i) => {
    if (typeof m !== "string" || m === "") throw new ConfigError(`genome.models[${i}]`, `expected a model path, got ${JSON.stringify(m)}`);
    return m;
  });
  const int = (key: string, dflt: number | null, min: number): number | null => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    if (typeof x !== "number" || !Number.isInteger(x) || x < min)
      throw new ConfigError(`genome.${key}`, `expected an integer ≥ ${min}, got ${JSON.stringify(x)}`);
    return x;
  };
  const pos = (key: string, dflt: number): number => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    if (typeof x !== "number" || !(x > 0) || !Number.isFinite(x)) throw new ConfigError(`genome.${key}`, `expected a number > 0, got ${JSON.stringify(x)}`);
    return x;
  };
  if (v.scaling !== undefined && typeof v.scaling !== "boolean")
    throw new ConfigError("genome.scaling", `expected true or false, got ${JSON.stringify(v.scaling)}`);
  const init = (v.init ?? DFS_DEFAULTS.init) as DfsInit;
  if (!INITS.includes(init)) throw new ConfigError("genome.init", `unknown init '${String(init)}' (known: ${INITS.join(", ")})`);
  return {
    kind: "dfs",
    models,
    repeats: int("repeats", DFS_DEFAULTS.repeats, 1)!,
    max_layers: int("max_layers", null, 1),
    scaling: (v.scaling as boolean | undefined) ?? DFS_DEFAULTS.scaling,
    scale_step: pos("scale_step", DFS_DEFAULTS.scale_step),
    init,
    init_logit: pos("init_logit", DFS_DEFAULTS.init_logit),
  };
}

/** T = repeats × M slots. */
export function dfsSlots(def: DfsGenomeDefinition, layerCounts: readonly number[]): number {
  return def.repeats * layerCounts.reduce((a, b) => a + b, 0);
}

export function dfsGenotypeLength(def: DfsGenomeDefinition, layerCounts: readonly number[]): number {
  const t = dfsSlots(def, layerCounts);
  return def.scaling ? 2 * t : t;
}

/** x0 (see DfsInit); scale genes start at 0 (s = 1). */
export function dfsInitialGenotype(def: DfsGenomeDefinition, layerCounts: readonly number[]): number[] {
  const m = layerCounts.reduce((a, b) => a + b, 0);
  const t = def.repeats * m;
  const x = new Array<number>(dfsGenotypeLength(def, layerCounts)).fill(0);
  if (def.init !== "zeros") {
    const on = def.init === "first_model" ? layerCounts[0] : m;
    for (let k = 0; k < t; k++) x[k] = k < on ? def.init_logit : -def.init_logit;
  }
  return x;
}

/** The path a genotype encodes (indicator threshold, max_layers bound, non-empty repair). */
export function decodeDfsPath(def: DfsGenomeDefinition, layerCounts: readonly number[], genotype: readonly number[]): PathLayer[] {
  const concat: { model: number; layer: number }[] = [];
  layerCounts.forEach((n, model) => {
    for (let layer = 0; layer < n; layer++) concat.push({ model, layer });
  });
  const m = concat.length;
  const t = def.repeats * m;
  if (genotype.length !== dfsGenotypeLength(def, layerCounts)) {
    throw new ConfigError("genome", `dfs genotype has ${genotype.length} genes, expected ${dfsGenotypeLength(def, layerCounts)}`);
  }
  let slots: number[] = [];
  for (let k = 0; k < t; k++) if (genotype[k] > 0) slots.push(k);
  const limit = def.max_layers ?? t;
  if (slots.length > limit) {
    const keep = new Set([...slots].sort((a, b) => genotype[b] - genotype[a] || a - b).slice(0, limit));
    slots = slots.filter((k) => keep.has(k));
  }
  if (slots.length === 0) {
    let best = 0;
    for (let k = 1; k < t; k++) if (genotype[k] > genotype[best]) best = k;
    slots = [best];
  }
  return slots.map((k) => ({ ...concat[k % m], scale: def.scaling ? slotScale(genotype[t + k], def.scale_step) : 1 }));
}

/** exp(step·g) rounded to 4 decimals, so best.yml states the factor that was evaluated. */
export function slotScale(gene: number, step: number): number {
  return Math.round(Math.exp(step * gene) * 1e4) / 1e4;
}

export interface PathRun {
  model: number;
  start: number;
  end: number;
  scale: number;
}

/** Maximal runs of consecutive layers of one model with one scale: one passthrough slice each. */
export function groupPath(path: readonly PathLayer[]): PathRun[] {
  const runs: PathRun[] = [];
  for (const p of path) {
    const last = runs[runs.length - 1];
    if (last && last.model === p.model && last.end === p.layer && last.scale === p.scale) last.end++;
    else runs.push({ model: p.model, start: p.layer, end: p.layer + 1, scale: p.scale });
  }
  return runs;
}

/** The passthrough slices of a path; a scaled run scales only o_proj and down_proj. */
export function pathSlices(models: readonly string[], path: readonly PathLayer[]): MergeConfigSlice[] {
  return groupPath(path).map((r) => {
    const src: MergeConfigSlice["sources"][number] = { model: models[r.model], layer_range: [r.start, r.end] };
    if (r.scale !== 1) {
      src.parameters = { scale: [{ filter: "o_proj", value: r.scale }, { filter: "down_proj", value: r.scale }, { value: 1 }] };
    }
    return { sources: [src] };
  });
}

/**
 * The candidate as mergekit YAML: passthrough, computed in float32 and saved as bfloat16 (as the
 * other evolve candidates), so `mergeloom merge` of it gives exactly the evaluated weights.
 * Embeddings come from the first slice's model and norm/lm_head from the last slice's, as in
 * every mergekit passthrough merge.
 */
export function dfsCandidateYaml(def: DfsGenomeDefinition, layerCounts: readonly number[], genotype: readonly number[], header?: string): string {
  const path = decodeDfsPath(def, layerCounts, genotype);
  const body = mergeConfigToYaml({ merge_method: "passthrough", slices: pathSlices(def.models, path), dtype: "float32", out_dtype: "bfloat16" });
  return withCommentHeader(body, header);
}

/** A short human-readable path, e.g. `expert-add[0-3] expert-sub[2-3]×0.9512` (models by basename). */
export function describePath(models: readonly string[], path: readonly PathLayer[]): string {
  const name = (i: number) => models[i].replace(/\/+$/, "").split("/").pop() ?? models[i];
  return groupPath(path)
    .map((r) => `${name(r.model)}[${r.end - r.start === 1 ? r.start : `${r.start}-${r.end - 1}`}]${r.scale !== 1 ? `×${r.scale}` : ""}`)
    .join(" ");
}
