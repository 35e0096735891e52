/**
 * multislerp: barycentric interpolation on the hypersphere. Each (flattened) input, or its task
 * vector when a base is set, is projected to the unit sphere; the weighted mean direction m is
 * found, the points are mapped to the tangent space at m, averaged there, mapped back with the
 * exponential map, and scaled by the weighted mean of the norms.
 *
 * Numerics: mergekit computes in torch fp32. Norms and dot products are accumulated in float64
 * and rounded to fp32; intermediate vectors are kept in float64 and the output rounded once,
 * which differs from mergekit by fp32 rounding. Deliberate difference: weights summing to 0 with
 * normalize_weights are refused (mergekit divides by 0 and writes nan).
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod, type MergeContext, type MergeInput } from "../define-merge-method.js";
import { bool, num } from "../params.js";

const EPS = 1e-8;
const f32 = Math.fround;

type Ctx = Pick<MergeContext, "tensorName" | "baseIndex" | "params"> & { inputs: readonly Pick<MergeInput, "model" | "params">[] };

/** The non-base inputs and their fp32 weights (normalized when asked). */
function pointsOf(ctx: Ctx): { idx: number[]; w: number[] } {
  const idx = ctx.inputs.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
  if (idx.length === 0) throw new ParamError(`merge ${ctx.tensorName} with multislerp: no models besides the base; list at least one model`);
  const raw = idx.map((i) => {
    const w = ctx.inputs[i].params.weight;
    if (typeof w !== "number") throw new ParamError(`merge ${ctx.tensorName} with multislerp: model '${ctx.inputs[i].model}' has no weight; add a weight for it`);
    return f32(w);
  });
  if (ctx.params.normalize_weights === false || idx.length === 1) return { idx, w: raw };
  const sum = f32(raw.reduce((a, b) => a + b, 0));
  if (sum === 0) {
    throw new ParamError(`merge ${ctx.tensorName} with multislerp: weights sum to 0 with normalize_weights: true; change the weights or set normalize_weights: false`);
  }
  return { idx, w: raw.map((x) => f32(x / sum)) };
}

export const multislerp = defineMergeMethod({
  name: "multislerp",
  reference: "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
  params: { normalize_weights: bool(true), eps: num(EPS) },
  modelParams: { weight: num() },
  base: "optional",
  check(ctx) {
    pointsOf(ctx);
  },
  merge(ctx) {
    const { idx, w } = pointsOf(ctx);
    if (idx.length === 1) return Float32Array.from(ctx.inputs[idx[0]].data); // mergekit: no interpolation, base ignored
    const eps = typeof ctx.params.eps === "number" ? ctx.params.eps : EPS;
    const base = ctx.baseIndex >= 0 ? ctx.inputs[ctx.baseIndex].data : null;
    const n = ctx.inputs[idx[0]].data.length;
    const N = idx.length;
    // Points (task vectors when based), exact fp32 differences held in float64.
    const pts = idx.map((i) => {
      const x = ctx.inputs[i].data;
      const p = new Float64Array(n);
      for (let k = 0; k < n; k++) p[k] = base ? f32(x[k] - base[k]) : x[k];
      return p;
    });
    const norms = pts.map((p) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += p[k] * p[k];
      return f32(Math.sqrt(s));
    });
    const inv = norms.map((nr) => f32(nr + eps));
    const mean = new Float64Array(n);
    for (let i = 0; i < N; i++) for (let k = 0; k < n; k++) mean[k] += w[i] * (pts[i][k] / inv[i]);
    let mm = 0;
    for (let k = 0; k < n; k++) mm += mean[k] * mean[k];
    const meanNorm = f32(Math.sqrt(mm));
    const out = new Float32Array(n);
    if (meanNorm < eps) {
      if (N !== 2) {
        throw new ParamError(
          `merge ${ctx.tensorName} with multislerp: the weighted sum of the input directions is zero (antipodal inputs with balancing weights); use different weights`,
        );
      }
      // mergekit falls back to a weighted sum of the two points
      for (let k = 0; k < n; k++) out[k] = w[0] * pts[0][k] + w[1] * pts[1][k] + (base ? base[k] : 0);
      return out;
    }
    for (let k = 0; k < n; k++) mean[k] /= meanNorm;
    // Tangent-space average: T = Σ w_i (u_i − (u_i·m) m)
    const T = new Float64Array(n);
    for (let i = 0; i < N; i++) {
      let d = 0;
      for (let k = 0; k < n; k++) d += (pts[i][k] / inv[i]) * mean[k];
      const dot = f32(d);
      for (let k = 0; k < n; k++) T[k] += w[i] * (pts[i][k] / inv[i] - dot * mean[k]);
    }
    let tt = 0;
    for (let k = 0; k < n; k++) tt += T[k] * T[k];
    const tNorm = f32(f32(Math.sqrt(tt)) + eps);
    const cosT = f32(Math.cos(tNorm));
    const sinRatio = f32(f32(Math.sin(tNorm)) / tNorm);
    let avgNorm = 0;
    for (let i = 0; i < N; i++) avgNorm += norms[i] * w[i];
    avgNorm = f32(avgNorm);
    for (let k = 0; k < n; k++) {
      const r = f32((mean[k] * cosT + T[k] * sinRatio) * avgNorm);
      out[k] = base ? base[k] + r : r;
    }
    return out;
  },
});
