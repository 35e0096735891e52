/**
 * `torch.var(x, dim=0, unbiased=False)` of a stack of N rows on CPU: torch reduces each column
 * with Welford's update in float64 over the N values in row order (std_var_kernel: WelfordOps
 * with a double accumulator, also for bf16/fp16 inputs), divides m2 by N and casts the double to
 * the dtype (through float32).
 */
import { roundTo, type ComputeDType } from "./torch-float.js";

/** Variance of column j: `get(r, j)` is row r's value (already of dtype `dt`). */
export function varDim0(dt: ComputeDType, nRows: number, n: number, get: (r: number, j: number) => number): Float32Array {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let mean = 0;
    let m2 = 0;
    for (let r = 0; r < nRows; r++) {
      const x = get(r, j);
      const delta = x - mean;
      mean += delta / (r + 1);
      m2 += delta * (x - mean);
    }
    out[j] = roundTo(dt, m2 / nRows);
  }
  return out;
}
