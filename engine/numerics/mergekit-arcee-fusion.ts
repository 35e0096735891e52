/**
 * mergekit's `arcee_fusion` (merge_methods/arcee_fusion.py) in torch's arithmetic, for
 * `--numerics mergekit` in bf16/fp16 on tensors of at most 10⁶ elements: importance =
 * |x − base| · Σ_row p·log(p/q) with p = softmax(x) + 1e-8, q = softmax(base) + 1e-8 (last dim);
 * threshold = median + 1.5·(q3 − q1) of the sorted importances at int(q·(n − 1)) (q as fp32);
 * out = base + (x − base)·(importance ≥ threshold) — the mask is fp32, so that last sum and the
 * result are fp32 (mergekit writes fp32 unless out_dtype is set).
 * softmax and log are torch's (torch-softmax.ts, SLEEF's logf). Above 10⁶ elements mergekit sorts
 * a torch.randperm sample (no seed reaches it), which no other generator reproduces: refused.
 */
import { ParamError } from "../errors/index.js";
import { subjectOf } from "../methods/generalized-task-arithmetic.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { torchUnary } from "./torch-unary.js";
import { softmaxLastDim } from "./torch-softmax.js";
import { add, addScalar, div, mul, mulScalar, roundTo, sub, sumAll } from "./torch-float.js";

/** mergekit's approximate_quantiles samples tensors with more elements than this. */
export const ARCEE_FUSION_SAMPLE_LIMIT = 1_000_000;
const EPS = 1e-8;
const f = Math.fround;

export const arceeFusionMergekit: MergekitMethod = {
  elementwise: () => false,
  resultF32: true,
  merge(ctx: MergekitContext): Float32Array {
    const { dt, profile: p } = ctx;
    const { log } = torchUnary(p, dt);
    const what = subjectOf("arcee_fusion", ctx.tensorName);
    if (ctx.inputs.length === 1) return Float32Array.from(ctx.inputs[0].data);
    if (ctx.baseIndex < 0) throw new ParamError(`${what}: a base model is required; set base_model`);
    if (ctx.inputs.length !== 2) throw new ParamError(`${what}: ArceeFusion merge expects exactly two models`);
    const a = ctx.inputs[ctx.baseIndex].data;
    const b = ctx.inputs[1 - ctx.baseIndex].data;
    const n = a.length;
    if (n > ARCEE_FUSION_SAMPLE_LIMIT)
      throw new ParamError(
        `${what}: ${n} elements is above mergekit's 10⁶ sampling threshold, where it sorts a torch.randperm sample that --numerics mergekit cannot reproduce; use --numerics default`,
      );
    const cols = ctx.shape.length ? ctx.shape[ctx.shape.length - 1] : n;
    const sp = softmaxLastDim(p, dt, b, cols);
    const sq = softmaxLastDim(p, dt, a, cols);
    const importance = new Float32Array(n);
    const prod = new Float32Array(cols);
    for (let from = 0; from < n; from += cols) {
      for (let j = 0; j < cols; j++) {
        const pj = addScalar(dt, sp[from + j], EPS);
        const qj = addScalar(dt, sq[from + j], EPS);
        prod[j] = mul(dt, pj, roundTo(dt, log(div(dt, pj, qj))));
      }
      const kl = sumAll(dt, prod, p.lanes);
      for (let j = from; j < from + cols; j++) importance[j] = mul(dt, Math.abs(sub(dt, b[j], a[j])), kl);
    }
    const sorted = Float32Array.from(importance).sort();
    const at = (q: number): number => sorted[Math.trunc(f(f(q) * f(n - 1)))];
    const median = at(0.5);
    const iqr = sub(dt, at(0.75), at(0.25));
    const threshold = add(dt, median, mulScalar(p, dt, iqr, 1.5));
    const out = new Float32Array(n);
    // delta · mask.float() promotes to fp32, and so does base + that
    for (let j = 0; j < n; j++) {
      const delta = sub(dt, b[j], a[j]);
      out[j] = f(a[j] + (importance[j] >= threshold ? delta : delta * 0));
    }
    return out;
  },
};
