/**
 * SlerpTask.execute under `--numerics mergekit`. mergekit's slerp runs in numpy float32 whatever
 * the dtype (`v.float().numpy()`), then casts the result back (`.to(dtype)`): normalize copies by
 * np.linalg.norm, dot = np.sum(v0·v1) (numpy's pairwise summation), lerp when |dot| > 0.9995,
 * else sin((1−t)θ)/sinθ·v0 + sin(tθ)/sinθ·v1 with Python floats acting as float32 (NumPy 2).
 *
 * Not bit-exact in general: np.linalg.norm is BLAS sdot (OpenBLAS's kernel order depends on the
 * CPU) and arccos/sin are numpy's SIMD float32 routines; here the norm is accumulated in double
 * and the transcendental functions are computed in double and rounded to float32. The README
 * lists the measured differences.
 */
import { ParamError } from "../errors/index.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { roundTo } from "./torch-float.js";

const f = Math.fround;

/** numpy's pairwise_sum for float32 (8 accumulators up to 128 terms, halves above). */
export function numpyPairwiseSum(get: (i: number) => number, from: number, n: number): number {
  if (n < 8) {
    let res = -0;
    for (let i = 0; i < n; i++) res = f(res + get(from + i));
    return res;
  }
  if (n <= 128) {
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => get(from + k));
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let k = 0; k < 8; k++) r[k] = f(r[k] + get(from + i + k));
    let res = f(f(f(r[0] + r[1]) + f(r[2] + r[3])) + f(f(r[4] + r[5]) + f(r[6] + r[7])));
    for (; i < n; i++) res = f(res + get(from + i));
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return f(numpyPairwiseSum(get, from, n2) + numpyPairwiseSum(get, from + n2, n - n2));
}

function normalized(v: Float32Array, eps: number): Float32Array {
  let sq = 0;
  for (let j = 0; j < v.length; j++) sq += v[j] * v[j];
  const nv = f(Math.sqrt(f(sq)));
  if (!(nv > eps)) return v;
  const out = new Float32Array(v.length);
  for (let j = 0; j < v.length; j++) out[j] = f(v[j] / nv);
  return out;
}

export const slerpMergekit: MergekitMethod = {
  elementwise: () => false,
  merge(ctx: MergekitContext): Float32Array {
    if (ctx.inputs.length === 1) return Float32Array.from(ctx.inputs[0].data);
    if (ctx.inputs.length !== 2 || ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with slerp: Slerp merge expects exactly two models, the base and one other`);
    const v0 = ctx.inputs[ctx.baseIndex].data;
    const v1 = ctx.inputs[1 - ctx.baseIndex].data;
    const t = ctx.params.t as number;
    const n0 = normalized(v0, 1e-8);
    const n1 = normalized(v1, 1e-8);
    const dot = numpyPairwiseSum((j) => f(n0[j] * n1[j]), 0, v0.length);
    const out = new Float32Array(v0.length);
    if (Math.abs(dot) > f(0.9995)) {
      const a = f(1 - t);
      const b = f(t);
      for (let j = 0; j < out.length; j++) out[j] = roundTo(ctx.dt, f(f(a * v0[j]) + f(b * v1[j])));
      return out;
    }
    const theta0 = f(Math.acos(dot));
    const sin0 = f(Math.sin(theta0));
    const thetaT = f(theta0 * f(t));
    const sinT = f(Math.sin(thetaT));
    const s0 = f(f(Math.sin(f(theta0 - thetaT))) / sin0);
    const s1 = f(sinT / sin0);
    for (let j = 0; j < out.length; j++) out[j] = roundTo(ctx.dt, f(f(s0 * v0[j]) + f(s1 * v1[j])));
    return out;
  },
};
