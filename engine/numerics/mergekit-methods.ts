/**
 * mergekit's merge methods in torch's arithmetic, for `--numerics mergekit`: each follows the
 * method's `execute` in mergekit (merge_methods/*.py) op for op, with every intermediate a tensor
 * of the compute dtype rounded as torch rounds it (torch-float.ts). Methods mergekit does not
 * have (consensus_ta, consensus_ties) are absent: the planner refuses them in this mode.
 */
import { ParamError } from "../errors/index.js";
import { weightOf, numParam, subjectOf } from "../methods/generalized-task-arithmetic.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { sumModels } from "./mergekit-context.js";
import { gtaMergekit } from "./mergekit-gta.js";
import { modelStockMergekit } from "./mergekit-model-stock.js";
import { slerpMergekit } from "./mergekit-slerp.js";
import { sceMergekit } from "./mergekit-sce.js";
import { karcherMergekit } from "./mergekit-karcher.js";
import { multislerpMergekit } from "./mergekit-multislerp.js";
import { nuslerpMergekit } from "./mergekit-nuslerp.js";
import { arceeFusionMergekit } from "./mergekit-arcee-fusion.js";
import { add, div, mul, mulScalar, rdivScalar, roundTo, rsubScalar, sub, sumAll } from "./torch-float.js";

const always = () => true;

/** LinearMergeTask: (weights * stack(tensors)).sum(dim=0), then / weights.sum(dim=0) if normalize. */
const linear: MergekitMethod = {
  elementwise: always,
  merge(ctx: MergekitContext): Float32Array {
    const { dt } = ctx;
    const xs = ctx.inputs.map((i) => i.data);
    const ws = ctx.inputs.map((i) => roundTo(dt, weightOf("linear", ctx.tensorName, i)));
    const out = sumModels(ctx, xs.length, (r, j) => mul(dt, ws[r], xs[r][j]), new Float32Array(xs[0].length));
    if (ctx.params.normalize !== false) {
      const total = sumAll(dt, ws, ctx.profile.lanes);
      for (let j = 0; j < out.length; j++) out[j] = div(dt, out[j], total);
    }
    return out;
  },
};

/** PassthroughMergeTask: the one tensor, times `scale` (a Python float) when set. */
const passthrough: MergekitMethod = {
  elementwise: always,
  merge(ctx: MergekitContext): Float32Array {
    if (ctx.inputs.length !== 1)
      throw new ParamError(`${subjectOf("passthrough", ctx.tensorName)}: Passthrough merge expects exactly one tensor, got ${ctx.inputs.length}`);
    const x = ctx.inputs[0].data;
    const scale = ctx.inputs[0].params.scale;
    if (typeof scale !== "number") return Float32Array.from(x);
    const out = new Float32Array(x.length);
    for (let j = 0; j < x.length; j++) out[j] = mulScalar(ctx.profile, ctx.dt, x[j], scale);
    return out;
  },
};

/**
 * nearswap_merge: weight = (t / |a − b|.clamp(min=1e-6)).clamp(0, 1); weight·b + (1 − weight)·a,
 * where `t / tensor` is torch's `tensor.reciprocal() * t`.
 */
const nearswap: MergekitMethod = {
  elementwise: always,
  merge(ctx: MergekitContext): Float32Array {
    const { dt, profile: p } = ctx;
    const a = ctx.inputs[ctx.baseIndex].data;
    const others = ctx.inputs.filter((_, i) => i !== ctx.baseIndex);
    if (others.length === 0) return Float32Array.from(a);
    if (others.length !== 1)
      throw new ParamError(`${subjectOf("nearswap", ctx.tensorName)}: NearSwap merge expects exactly two models, one base and one other`);
    const b = others[0].data;
    const t = numParam(ctx.params, "t", NaN);
    const lo = roundTo(dt, 1e-6);
    const out = new Float32Array(a.length);
    for (let j = 0; j < a.length; j++) {
      const absdiff = Math.max(Math.abs(sub(dt, a[j], b[j])), lo);
      const w = Math.min(1, Math.max(0, rdivScalar(p, dt, t, absdiff)));
      out[j] = add(dt, mul(dt, w, b[j]), mul(dt, rsubScalar(dt, 1, w), a[j]));
    }
    return out;
  },
};

const GTA: Array<[string, Parameters<typeof gtaMergekit>[1]]> = [
  ["task_arithmetic", { consensus: false, sparsification: null, normalize: false, rescale: false }],
  ["ties", { consensus: true, sparsification: "magnitude", normalize: true, rescale: false }],
  ["dare_linear", { consensus: false, sparsification: "random", normalize: false, rescale: true }],
  ["dare_ties", { consensus: true, sparsification: "random", normalize: false, rescale: true }],
  ["breadcrumbs", { consensus: false, sparsification: "magnitude_outliers", normalize: false, rescale: false }],
  ["breadcrumbs_ties", { consensus: true, sparsification: "magnitude_outliers", normalize: false, rescale: false }],
  ["della", { consensus: true, sparsification: "della_magprune", normalize: true, rescale: true }],
  ["della_linear", { consensus: false, sparsification: "della_magprune", normalize: false, rescale: true }],
];

/** Every method `--numerics mergekit` reproduces, by mergekit name. */
export const MERGEKIT_NUMERICS_METHODS: ReadonlyMap<string, MergekitMethod> = new Map<string, MergekitMethod>([
  ["linear", linear],
  ["passthrough", passthrough],
  ["nearswap", nearswap],
  ["model_stock", modelStockMergekit],
  ["slerp", slerpMergekit],
  ["sce", sceMergekit],
  ["multislerp", multislerpMergekit],
  ["nuslerp", nuslerpMergekit],
  ["arcee_fusion", arceeFusionMergekit],
  ["karcher", karcherMergekit],
  ...GTA.map(([name, f]): [string, MergekitMethod] => [name, gtaMergekit(name, f)]),
]);
