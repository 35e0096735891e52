/**
 * SlerpTask.execute under `--numerics mergekit`, as mergekit runs it with NumPy 1.24 (Debian's
 * python3-numpy, reference BLAS, AVX-512 CPU). mergekit's slerp works on `v.float().numpy()`
 * whatever the dtype and casts the result back with `.to(dtype)`. NumPy 1.x scalar rules decide
 * the precision of each step, so the op order below is numpy's exactly:
 * - norm: np.linalg.norm → x.dot(x) → BLAS sdot; reference BLAS accumulates one float32 in index
 *   order (its 5-way unroll keeps that order), then np.sqrt in float32; v / norm in float32.
 * - dot: np.sum(v0·v1) → products in float32, then numpy's buffered reduction: the flattened
 *   tensor in blocks of 8192 (the ufunc buffer size), each block by numpy's pairwise float32
 *   summation (8 accumulators up to 128 terms, halves above), the block sums added in order.
 * - |dot| > 0.9995 compares in float64 (both are scalars); lerp multiplies the float32 arrays by
 *   float32(1 − t) and float32(t).
 * - θ₀ = np.arccos(dot) and sin θ₀ are float32 (SVML arccos and numpy's SIMD sin, replayed in
 *   numpy-float32-math.ts); θ₀·t is float64 (a float32 scalar times a Python float is float64 in
 *   NumPy 1.x), so sin(θ_t), sin(θ₀ − θ_t) and both ratios are float64 (libm sin), and the ratios
 *   are rounded to float32 when they multiply the float32 arrays.
 */
import { ParamError } from "../errors/index.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { numpyAcosf, numpySinf } from "./numpy-float32-math.js";
import { roundTo } from "./torch-float.js";

const f = Math.fround;

/** numpy's pairwise_sum for float32 (8 accumulators up to 128 terms, halves above). */
export function numpyPairwiseSum(get: (i: number) => number, from: number, n: number): number {
  if (n < 8) {
    let res = 0;
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

/** Reference BLAS sdot(v, v): one float32 accumulator, index order. */
export function referenceSdotSelf(v: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < v.length; j++) s = f(s + f(v[j] * v[j]));
  return s;
}

/** np.sum of a contiguous float32 array of n elements (element i is get(i)). */
export function numpySumF32(get: (i: number) => number, n: number): number {
  let acc = 0;
  for (let s = 0; s < n; s += 8192) acc = f(acc + numpyPairwiseSum(get, s, Math.min(8192, n - s)));
  return acc;
}

/** mergekit's normalize(v, eps): v / np.linalg.norm(v) when the norm exceeds eps. */
function normalized(v: Float32Array, eps: number): Float32Array {
  const nv = f(Math.sqrt(referenceSdotSelf(v)));
  if (!(nv > eps)) return v;
  const out = new Float32Array(v.length);
  for (let j = 0; j < v.length; j++) out[j] = f(v[j] / nv);
  return out;
}

export const slerpMergekit: MergekitMethod = {
  elementwise: () => false,
  merge(ctx: MergekitContext): Float32Array {
    if (ctx.inputs.length === 1) return Float32Array.from(ctx.inputs[0].data);
    if (ctx.inputs.length !== 2 || ctx.baseIndex < 0)
      throw new ParamError(`merge ${ctx.tensorName} with slerp: Slerp merge expects exactly two models, the base and one other`);
    const v0 = ctx.inputs[ctx.baseIndex].data;
    const v1 = ctx.inputs[1 - ctx.baseIndex].data;
    const t = ctx.params.t as number;
    const n0 = normalized(v0, 1e-8);
    const n1 = normalized(v1, 1e-8);
    const dot = numpySumF32((j) => f(n0[j] * n1[j]), v0.length);
    const out = new Float32Array(v0.length);
    let a: number;
    let b: number;
    if (Math.abs(dot) > 0.9995) {
      a = f(1 - t);
      b = f(t);
    } else {
      const theta0 = numpyAcosf(dot);
      const sin0 = numpySinf(theta0);
      const thetaT = theta0 * t;
      a = f(Math.sin(theta0 - thetaT) / sin0);
      b = f(Math.sin(thetaT) / sin0);
    }
    for (let j = 0; j < out.length; j++) out[j] = roundTo(ctx.dt, f(f(a * v0[j]) + f(b * v1[j])));
    return out;
  },
};
