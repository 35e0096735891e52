/**
 * Consensus merging with TALL masks — Wang et al., "Localizing Task Information for Improved Model
 * Merging and Compression", ICML 2024 (arXiv 2405.07813). Not part of mergekit.
 *
 * How the paper maps onto a per-tensor merge:
 *  - τ_t = θ_t − θ_0 is each non-base model's task vector (θ_0 = base_model), unweighted.
 *  - τ_MTL is the merged multi-task vector: Σ_t w_t·τ_t for `consensus_ta` (task arithmetic, no
 *    normalization), or the TIES-merged vector for `consensus_ties` — mergekit's `ties` mix with
 *    each model's `density` (magnitude pruning), sum sign election and the disjoint mean
 *    (mergekit's ties default `normalize: true`), before any scaling.
 *  - TALL mask of task t (paper eq. 3): m_t = 1{|τ_t| ≥ |τ_MTL − τ_t|·λ_t}, with one λ_t for every
 *    task, `tall_mask_lambda` (the paper tunes λ_t per task on validation data in [0.2, 0.6];
 *    without validation data we take one value, default 0.4). The authors' code uses a strict
 *    `>`; we use `≥` as specified for mergeloom, which only differs on exact equality.
 *  - Consensus mask (paper §4): keep the weights active in at least k tasks,
 *    mask = 1{Σ_t m_t ≥ k} (k = 2 drops "catastrophic" and "selfish" weights; k = 1 only the
 *    catastrophic ones; k ≤ 0 reduces to plain TA/TIES).
 *  - Result: θ_0 + λ·(mask ⊙ τ_MTL), where `lambda` plays the role of the paper's scaling α and of
 *    mergekit's `lambda`.
 * The masks are computed per tensor, which is exact: every step is elementwise once τ_MTL is known
 * (TIES' magnitude pruning is itself per tensor in mergekit).
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, type MergeContext, type MergeMethod } from "./define-merge-method.js";
import { num, type ParamSpecs, type ResolvedParams } from "./params.js";
import { checkMagnitudeDensity } from "./sparsify.js";
import {
  addScaled,
  mixTaskVectors,
  requireBase,
  sparsifyTaskVectors,
  subjectOf,
  taskVectors,
  weightOf,
  type TaskVector,
} from "./generalized-task-arithmetic.js";

const REFERENCE = "https://arxiv.org/abs/2405.07813";

function numParam(params: ResolvedParams, name: string, def: number): number {
  const v = params[name];
  return typeof v === "number" ? v : def;
}

/**
 * Counts, per element, the tasks whose TALL mask is on: |τ_t| ≥ |τ_MTL − τ_t|·λ_t, in fp32.
 */
export function countTallMasks(taskVectors: readonly Float32Array[], mtl: Float32Array, tallMaskLambda: number): Uint16Array {
  const n = mtl.length;
  const counts = new Uint16Array(n);
  const l = Math.fround(tallMaskLambda);
  for (const tau of taskVectors) {
    for (let j = 0; j < n; j++) {
      const t = tau[j];
      if (Math.abs(t) >= Math.fround(Math.abs(Math.fround(mtl[j] - t)) * l)) counts[j]++;
    }
  }
  return counts;
}

function checkConsensus(name: string, ties: boolean, ctx: Parameters<NonNullable<MergeMethod["check"]>>[0]): void {
  requireBase(name, ctx);
  for (const key of ["k", "lambda", "tall_mask_lambda"]) {
    const v = ctx.params[key];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v))) {
      throw new ParamError(`${subjectOf(name, ctx.tensorName)}: parameter '${key}' must be a finite number, got ${String(v)}`);
    }
  }
  const numel = ctx.shape.reduce((a, b) => a * b, 1);
  ctx.inputs.forEach((input, i) => {
    if (i === ctx.baseIndex) return;
    weightOf(name, ctx.tensorName, input);
    if (ties) checkMagnitudeDensity(numParam(input.params, "density", 1), numel, subjectOf(name, ctx.tensorName, input.model));
  });
}

function defineConsensus(name: string, ties: boolean): MergeMethod {
  const modelParams: ParamSpecs = ties ? { weight: num(1), density: num(1) } : { weight: num(1) };
  return defineMergeMethod({
    name,
    reference: REFERENCE,
    params: { k: num(2), lambda: num(1), tall_mask_lambda: num(0.4) },
    modelParams,
    base: "required",
    // Elementwise unless TIES prunes by magnitude over the whole tensor.
    elementwise: ties ? (_params, inputs) => inputs.every((i) => numParam(i.params, "density", 1) >= 1) : true,
    check: (ctx) => checkConsensus(name, ties, ctx),
    merge(ctx: MergeContext) {
      checkConsensus(name, ties, ctx);
      const tvs = taskVectors(name, ctx);
      const base = ctx.inputs[ctx.baseIndex].data;
      if (tvs.length === 0) return Float32Array.from(base);
      const n = base.length;
      // The TALL masks need the dense τ_t; the mix consumes (and overwrites) copies.
      const dense = tvs.map((tv) => tv.delta);
      const work: TaskVector[] = tvs.map((tv) => ({ ...tv, delta: Float32Array.from(tv.delta) }));
      if (ties) sparsifyTaskVectors(name, ctx, work, "magnitude", false);
      const mtl = mixTaskVectors(work, n, ties, ties);
      const counts = countTallMasks(dense, mtl, numParam(ctx.params, "tall_mask_lambda", 0.4));
      const k = numParam(ctx.params, "k", 2);
      for (let j = 0; j < n; j++) if (!(counts[j] >= k)) mtl[j] = 0;
      return addScaled(base, mtl, numParam(ctx.params, "lambda", 1));
    },
  });
}

export const consensusTa = defineConsensus("consensus_ta", false);
export const consensusTies = defineConsensus("consensus_ties", true);
