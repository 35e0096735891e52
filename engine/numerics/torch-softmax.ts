/**
 * `torch.softmax(x, dim=-1)` on CPU (SoftMaxKernel.cpp, `_vec_softmax_lastdim`), per torch build:
 * - bf16/fp16 rows: the max in fp32; exp(x − max) with Vectorized<float>::exp (SLEEF's expf) over
 *   whole fp32 vectors (16 lanes on torch 2.x's AVX-512 kernels, 8 on Debian torch 1.13's AVX2),
 *   summed per lane from 0, lanes folded as vec_reduce_all does (halves: i + L/2, …, + 1); then
 *   each value times fp32 1/sum, rounded to the dtype. The elements after the last whole vector
 *   take glibc's scalar expf (glibc-expf.ts), added one by one to the folded sum.
 * - fp32 rows on torch 1.13: the generic vectorized path — SLEEF's expf for every element (the
 *   last partial vector too), the sum's accumulator starting from the first vector with the tail
 *   blended into its first lanes, the same fold (a row shorter than a vector: summed in order),
 *   then times fp32 1/sum. (torch 2.x's fp32 path is
 *   not replayed: refused.)
 */
import { glibcExpf } from "./glibc-expf.js";
import { torchExpf } from "./sleef-float32.js";
import { roundTo, type ComputeDType, type TorchProfile } from "./torch-float.js";

const f = Math.fround;

/** Folds the lanes pairwise by halves (vec_reduce_all with shuffles), into lane 0. */
function foldLanes(acc: Float64Array): number {
  for (let w = acc.length / 2; w >= 1; w /= 2) for (let i = 0; i < w; i++) acc[i] = f(acc[i] + acc[i + w]);
  return acc[0];
}

/** Softmax of `cols`-long rows of `x` (values of dtype `dt`). */
export function softmaxLastDim(p: TorchProfile, dt: ComputeDType, x: Float32Array, cols: number): Float32Array {
  const torch1 = !p.scalarOpmath;
  const lanes = torch1 ? 8 : 16;
  const out = new Float32Array(x.length);
  const buf = new Float32Array(cols);
  const acc = new Float64Array(lanes);
  for (let from = 0; from < x.length; from += cols) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, x[from + j]);
    acc.fill(0);
    let sum: number;
    if (dt === "F32") {
      // vec::map (SLEEF for every element), reduce_all: acc = the first vector, then whole
      // vectors, then the tail into the first lanes
      for (let j = 0; j < cols; j++) buf[j] = torchExpf(f(x[from + j] - max));
      if (cols >= lanes) {
        for (let j = 0; j < cols; j++) acc[j % lanes] = j < lanes ? buf[j] : f(acc[j % lanes] + buf[j]);
        sum = foldLanes(acc);
      } else {
        // a row shorter than one vector: vec_reduce_all(op, v, size) adds lanes 1..size−1 to lane 0 in order
        sum = buf[0];
        for (let j = 1; j < cols; j++) sum = f(sum + buf[j]);
      }
    } else {
      const body = cols - (cols % lanes);
      for (let j = 0; j < body; j++) {
        buf[j] = torchExpf(f(x[from + j] - max));
        acc[j % lanes] = f(acc[j % lanes] + buf[j]);
      }
      sum = foldLanes(acc);
      for (let j = body; j < cols; j++) {
        buf[j] = glibcExpf(f(x[from + j] - max));
        sum = f(sum + buf[j]);
      }
    }
    const inv = f(1 / sum);
    for (let j = 0; j < cols; j++) out[from + j] = roundTo(dt, buf[j] * inv);
  }
  return out;
}
