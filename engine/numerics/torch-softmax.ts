/**
 * `torch.softmax(x, dim=-1)` of bf16/fp16 rows on an AVX-512 CPU (SoftMaxKernel.cpp,
 * `_vec_softmax_lastdim` for reduced floats): per row, the max in fp32; exp(x − max) with
 * Vectorized<float>::exp (SLEEF's expf) over 16-lane vectors, summed per lane, lanes folded as
 * vec_reduce_all does (i + 8, + 4, + 2, + 1); then each value times fp32 1/sum, rounded to the
 * dtype. A row whose length is not a multiple of 16 ends in glibc's scalar expf, which is not
 * replayed: such rows are refused.
 */
import { ParamError } from "../errors/index.js";
import { torchExpf } from "./sleef-float32.js";
import { roundTo, type ComputeDType } from "./torch-float.js";

const f = Math.fround;
const LANES = 16;

/** Softmax of `cols`-long rows of `x` (values of dtype `dt`); `what` names the tensor in errors. */
export function softmaxLastDim(dt: ComputeDType, x: Float32Array, cols: number, what: string): Float32Array {
  if (dt === "F32") throw new ParamError(`${what}: torch's fp32 softmax is not replayed; use --numerics default`);
  if (cols % LANES !== 0)
    throw new ParamError(
      `${what}: rows of ${cols} values end in glibc's scalar expf inside torch.softmax, which --numerics mergekit does not replay; use --numerics default`,
    );
  const out = new Float32Array(x.length);
  const buf = new Float32Array(cols);
  const acc = new Float64Array(LANES);
  for (let from = 0; from < x.length; from += cols) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, x[from + j]);
    acc.fill(0);
    for (let j = 0; j < cols; j++) {
      const e = torchExpf(f(x[from + j] - max));
      buf[j] = e;
      acc[j % LANES] = f(acc[j % LANES] + e);
    }
    for (let w = LANES / 2; w >= 1; w /= 2) for (let i = 0; i < w; i++) acc[i] = f(acc[i] + acc[i + w]);
    const inv = f(1 / acc[0]);
    for (let j = 0; j < cols; j++) out[from + j] = roundTo(dt, buf[j] * inv);
  }
  return out;
}
