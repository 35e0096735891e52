/**
 * arcee_fusion: keeps the other model's change only where it matters. Importance of an element is
 * |x − base| times the KL divergence KL(softmax(x) ‖ softmax(base)) of its row (last dim; a 1-D
 * tensor is one row, +1e-8 on both distributions). Elements with importance ≥ median + 1.5·IQR
 * take x, the others keep the base.
 *
 * Quantiles are mergekit's: sorted[int(q·(n−1))], with q·(n−1) in fp32. For tensors of more than
 * 1e6 elements mergekit sorts an unseeded random sample of 1e6 of them; here the sample is drawn
 * from the tensor's deterministic stream (ctx.random(0)), so results are reproducible but, like
 * mergekit's own runs, vary with the sample (one sample serves all three quantiles; mergekit draws two).
 *
 * Numerics: softmax and KL per row in float64, rounded to fp32; importance in fp32; the fused
 * value is base + (x − base) in fp32, as in mergekit.
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod, type MergeContext } from "../define-merge-method.js";

const f32 = Math.fround;
const SAMPLE = 1_000_000;
const KL_EPS = 1e-8;

function validate(ctx: Pick<MergeContext, "tensorName" | "baseIndex"> & { inputs: readonly unknown[] }): void {
  if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with arcee_fusion: a base model is required; set base_model`);
  if (ctx.inputs.length > 2) {
    throw new ParamError(`merge ${ctx.tensorName} with arcee_fusion: expects exactly two models (the base and one other), got ${ctx.inputs.length}`);
  }
}

/** Softmax of v (max-subtracted) plus eps, in float64. */
function softmaxEps(v: Float32Array, s: number, len: number, out: Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < len; j++) max = Math.max(max, v[s + j]);
  let z = 0;
  for (let j = 0; j < len; j++) {
    out[j] = Math.exp(v[s + j] - max);
    z += out[j];
  }
  for (let j = 0; j < len; j++) out[j] = f32(f32(out[j] / z) + KL_EPS);
}

/** mergekit's approximate_quantiles: the (possibly sampled) values sorted, indexed at int(q·(n−1)). */
function quantiles(values: Float32Array, qs: readonly number[], random: () => number): number[] {
  let pool: Float32Array;
  if (values.length > SAMPLE) {
    // Floyd's algorithm: a uniform SAMPLE-subset of the indices in O(SAMPLE) memory.
    const picked = new Set<number>();
    const n = values.length;
    for (let j = n - SAMPLE; j < n; j++) {
      const r = Math.floor(random() * (j + 1));
      picked.add(picked.has(r) ? j : r);
    }
    pool = new Float32Array(SAMPLE);
    let k = 0;
    for (const i of picked) pool[k++] = values[i];
  } else {
    pool = values.slice();
  }
  pool.sort();
  const last = f32(pool.length - 1);
  return qs.map((q) => pool[Math.trunc(f32(f32(q) * last))]);
}

export const arceeFusion = defineMergeMethod({
  name: "arcee_fusion",
  reference: "https://arcee.ai",
  params: {},
  modelParams: {},
  base: "required",
  check: validate,
  merge(ctx) {
    validate(ctx);
    const base = ctx.inputs[ctx.baseIndex].data;
    if (ctx.inputs.length === 1) return Float32Array.from(base);
    const x = ctx.inputs[1 - ctx.baseIndex].data;
    const n = base.length;
    const len = ctx.shape.length >= 1 ? ctx.shape[ctx.shape.length - 1] : n;
    const rows = len === 0 ? 0 : n / len;
    const importance = new Float32Array(n);
    const p = new Float64Array(len);
    const q = new Float64Array(len);
    for (let r = 0; r < rows; r++) {
      const s = r * len;
      softmaxEps(x, s, len, p);
      softmaxEps(base, s, len, q);
      let kl = 0;
      for (let j = 0; j < len; j++) kl += p[j] * Math.log(p[j] / q[j]);
      const klf = f32(kl);
      for (let j = 0; j < len; j++) importance[s + j] = Math.abs(f32(x[s + j] - base[s + j])) * klf;
    }
    const [median, q1, q3] = quantiles(importance, [0.5, 0.25, 0.75], ctx.random(0));
    const threshold = f32(median + f32(1.5 * f32(q3 - q1)));
    const out = new Float32Array(n);
    for (let k = 0; k < n; k++) out[k] = importance[k] >= threshold ? base[k] + f32(x[k] - base[k]) : base[k];
    return out;
  },
});
