/**
 * Arithmetic as torch does it on CPU in a given dtype, for `--numerics mergekit`.
 *
 * - Storage: a float32, bfloat16 or float16 tensor holds values of that dtype; here they are JS
 *   numbers (exact in double) or Float32Arrays whose elements are representable in the dtype.
 * - Elementwise ops (add, sub, mul, div, …) on bf16/fp16 compute in fp32 and round the result to
 *   the dtype (round to nearest even); in fp32 they are IEEE single ops. A double op followed by
 *   Math.fround is exactly the fp32 op for + − × ÷ and sqrt (double has more than 2·24+2 bits).
 * - Reductions (`sum`) accumulate in fp32 in torch's cascade order
 *   (aten/src/ATen/native/cpu/SumKernel.cpp: 4 interleaved partial sums, chunked "levels" of at
 *   least 16 terms, 8-lane fp32 vectors on AVX2) and round once to the dtype.
 *
 * Results assume torch's single-threaded reduction order (one intra-op thread, or tensors below
 * torch's 32 768-element grain size); with more threads torch splits long reductions per thread.
 */
import type { FloatDType } from "@mergeloom/proto/dtype";

export type ComputeDType = FloatDType;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const fround = Math.fround;

/** fp32 value → nearest bf16 (RNE; NaN stays NaN). */
function roundBF16(v: number): number {
  f32[0] = v;
  const b = u32[0];
  u32[0] = (b & 0x7fffffff) > 0x7f800000 ? (b | 0x00400000) & 0xffff0000 : (((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32[0];
}

const F16_MAX_HALF_ULP = 65520; // values at or above round to inf
/** fp32 value → nearest fp16 (RNE, subnormals, overflow to ±inf), without leaving fp32 bits. */
function roundF16(v: number): number {
  const a = Math.abs(v);
  if (!(a < F16_MAX_HALF_ULP)) return a >= F16_MAX_HALF_ULP ? (v > 0 ? Infinity : -Infinity) : v; // inf or NaN
  if (a < 2 ** -14) {
    // subnormal: multiples of 2^-24; near 0.75 fp32 has exactly that spacing, so one fp32 add rounds
    const r = fround(fround(a + 0.75) - 0.75);
    return v < 0 || (v === 0 && 1 / v < 0) ? -r : r;
  }
  f32[0] = v;
  const b = u32[0];
  u32[0] = ((b + 0xfff + ((b >>> 13) & 1)) & ~0x1fff) >>> 0;
  return f32[0];
}

/** x (any double) → fp32 → dtype, each step round-to-nearest-even: what storing an fp32 result does. */
export function roundTo(dt: ComputeDType, x: number): number {
  const v = fround(x);
  if (dt === "F32") return v;
  return dt === "BF16" ? roundBF16(v) : roundF16(v);
}

/** The rounding of `roundTo(dt, ·)` as one function (hot loops pick it once). */
export function rounder(dt: ComputeDType): (x: number) => number {
  if (dt === "F32") return fround;
  return dt === "BF16" ? (x) => roundBF16(fround(x)) : (x) => roundF16(fround(x));
}

/** Rounds every element to the dtype in place (a tensor `.to(dtype)`); returns `a`. */
export function roundArray(dt: ComputeDType, a: Float32Array): Float32Array {
  if (dt === "F32") return a;
  if (dt === "BF16") {
    const s = new Uint32Array(a.buffer, a.byteOffset, a.length);
    for (let i = 0; i < s.length; i++) {
      const b = s[i];
      s[i] = (b & 0x7fffffff) > 0x7f800000 ? (b | 0x00400000) & 0xffff0000 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
    }
    return a;
  }
  for (let i = 0; i < a.length; i++) a[i] = roundF16(a[i]);
  return a;
}

/** Elementwise ops on values of dtype `dt`. */
export const add = (dt: ComputeDType, a: number, b: number): number => roundTo(dt, a + b);
export const sub = (dt: ComputeDType, a: number, b: number): number => roundTo(dt, a - b);
export const mul = (dt: ComputeDType, a: number, b: number): number => roundTo(dt, a * b);
export const div = (dt: ComputeDType, a: number, b: number): number => roundTo(dt, a / b);

/**
 * The torch build being reproduced. Two things differ between the builds checked
 * (scripts/numerics/torch-reference.py): how a Python float meets a bf16/fp16 tensor in `*` and
 * `/` (torch 1.13 casts it to the tensor's dtype, so 0.3 acts as 0.30078125; torch 2.x keeps it
 * as fp32 "opmath"; `+` and `-` cast it to the dtype in both), and whether the fp32 2-norm kernel
 * fuses x·x + acc into one FMA (1.13's Debian build does, the 2.x wheel does not). Both sum with
 * 8 fp32 lanes, also where torch 2.x reports AVX512 (its reductions are not dispatched to AVX512).
 */
export interface TorchProfile {
  name: string;
  /** float32 sin/cos/acos/log/exp and dot come from MKL (the pip wheel) rather than SLEEF and BLAS. */
  f32Mkl: boolean;
  /** A bf16/fp16 2-norm over a strided dim (each output its own running sum) accumulates in the dtype, products rounded (1.13). */
  stridedNormInDtype: boolean;
  scalarOpmath: boolean;
  normFma: boolean;
  lanes: number;
  /** fp16 2-norms by the generic sequential reduction (torch 2.x) rather than the vectorized one. */
  halfNormSequential: boolean;
}
export const TORCH2: TorchProfile = {
  name: "torch 2.x",
  f32Mkl: true,
  stridedNormInDtype: false,
  scalarOpmath: true,
  normFma: false,
  lanes: 8,
  halfNormSequential: true,
};
export const TORCH1: TorchProfile = {
  name: "torch 1.13",
  f32Mkl: false,
  stridedNormInDtype: true,
  scalarOpmath: false,
  normFma: true,
  lanes: 8,
  halfNormSequential: false,
};
/** What `--numerics mergekit` reproduces: current torch (2.x). */
export const DEFAULT_PROFILE = TORCH2;

/** The value a Python float takes in `tensor * s` and `tensor / s`. */
export function mulScalarValue(p: TorchProfile, dt: ComputeDType, s: number): number {
  return p.scalarOpmath ? fround(s) : roundTo(dt, s);
}
/** `tensor * s` for a Python float s. */
export const mulScalar = (p: TorchProfile, dt: ComputeDType, x: number, s: number): number => roundTo(dt, x * mulScalarValue(p, dt, s));
/** `tensor / s` for a Python float s. */
export const divScalar = (p: TorchProfile, dt: ComputeDType, x: number, s: number): number => roundTo(dt, x / mulScalarValue(p, dt, s));
/** `tensor + s` (and `-`): the scalar is cast to the dtype first in every build. */
export const addScalar = (dt: ComputeDType, x: number, s: number): number => roundTo(dt, x + roundTo(dt, s));
/** `s - tensor`. */
export const rsubScalar = (dt: ComputeDType, s: number, x: number): number => roundTo(dt, roundTo(dt, s) - x);
/** `s / tensor`: torch's __rtruediv__ is `tensor.reciprocal() * s`. */
export const rdivScalar = (p: TorchProfile, dt: ComputeDType, s: number, x: number): number => mulScalar(p, dt, roundTo(dt, 1 / x), s);

/** ⌈log2 x⌉ as c10::utils::CeilLog2 (1 for x ≤ 2). */
function ceilLog2(x: number): number {
  if (x <= 2) return 1;
  return 32 - Math.clz32(x - 1);
}

/**
 * torch's multi_row_sum for one row: fp32 running sums in up to 4 levels, each level folding
 * `2^levelPower` terms of the one below, so only partial sums of similar size meet.
 * `get(i)` gives term i of `size`.
 */
export function cascadeSum(get: (i: number) => number, size: number): number {
  const levelPower = Math.max(4, Math.floor(ceilLog2(size) / 4));
  const step = 2 ** levelPower;
  const mask = step - 1;
  const acc = [0, 0, 0, 0];
  let i = 0;
  while (i + step <= size) {
    let a0 = acc[0];
    for (let j = 0; j < step; j++, i++) a0 = fround(a0 + get(i));
    acc[0] = a0;
    for (let j = 1; j < 4; j++) {
      acc[j] = fround(acc[j] + acc[j - 1]);
      acc[j - 1] = 0;
      if ((i & (mask * 2 ** (j * levelPower))) !== 0) break;
    }
  }
  let a0 = acc[0];
  for (; i < size; i++) a0 = fround(a0 + get(i));
  for (let j = 1; j < 4; j++) a0 = fround(a0 + acc[j]);
  return a0;
}

/** torch's row_sum: the terms as 4 interleaved cascades (term 4i+k into partial k), the tail into partial 0, then 0+1+2+3. */
export function rowSum(get: (i: number) => number, size: number): number {
  const q = Math.floor(size / 4);
  const p = [0, 1, 2, 3].map((k) => cascadeSum((i) => get(4 * i + k), q));
  let s = p[0];
  for (let i = q * 4; i < size; i++) s = fround(s + get(i));
  for (let k = 1; k < 4; k++) s = fround(s + p[k]);
  return s;
}

/** fp32 lanes of the Vectorized<float> torch's sum kernels run with (AVX2 dispatch). */
export const VEC_LANES = 8;

/**
 * `x.sum()` of a contiguous tensor in dtype `dt` (fp32 accumulation, one rounding): torch's
 * vectorized_inner_sum with one output. Elements are read from `x` (values of `dt`).
 */
export function sumAll(dt: ComputeDType, x: ArrayLike<number>, lanes = VEC_LANES): number {
  return roundTo(
    dt,
    sumAllF32(dt, x.length, (i) => x[i], lanes),
  );
}

/** The unrounded fp32 accumulator of `sumAll` over `n` terms `get(i)` (for fused products/squares). */
export function sumAllF32(dt: ComputeDType, n: number, get: (i: number) => number, lanes = VEC_LANES): number {
  // A vector load holds `lanes` fp32 terms; a bf16/fp16 load holds 2·lanes terms folded pairwise (k, k+lanes).
  const perVec = dt === "F32" ? lanes : 2 * lanes;
  if (n < perVec) return rowSum(get, n);
  const vecs = Math.floor(n / perVec);
  let final = 0;
  for (let k = vecs * perVec; k < n; k++) final = fround(final + get(k));
  for (let lane = 0; lane < lanes; lane++) {
    const term = dt === "F32" ? (v: number) => get(v * perVec + lane) : (v: number) => fround(get(v * perVec + lane) + get(v * perVec + lane + lanes));
    final = fround(final + rowSum(term, vecs));
  }
  return final;
}

/**
 * Whether torch's vectorized_outer_sum adds column `j` of `total` columns by plain cascade (the
 * blocks of 4 vectors) or by row_sum's 4-way interleaving (single vectors and the scalar tail);
 * scalar_outer_sum (rows shorter than one vector) cascades groups of 4 columns.
 */
export function columnCascades(dt: ComputeDType, j: number, total: number, lanes = VEC_LANES): boolean {
  const vecElems = dt === "F32" ? lanes : 2 * lanes;
  const cascadeEnd = total >= vecElems ? Math.floor(total / (4 * lanes)) * 4 * lanes : Math.floor(total / 4) * 4;
  return j < cascadeEnd;
}

/** The unrounded fp32 sum of terms[0..m) in torch's column order (`cascade` from columnCascades). */
export function sumTerms(terms: ArrayLike<number>, m: number, cascade: boolean): number {
  if (m <= 4) {
    // every order is the plain one up to 4 terms
    let s = 0;
    for (let r = 0; r < m; r++) s = fround(s + terms[r]);
    return s;
  }
  return cascade ? cascadeSum((r) => terms[r], m) : rowSum((r) => terms[r], m);
}

/**
 * `stack(rows).sum(dim=0)` in dtype `dt` for rows of `total` elements: torch's
 * vectorized_outer_sum (columns in blocks of 4 vectors summed by cascade, then single vectors and
 * the tail by row_sum), or scalar_outer_sum when a row is shorter than one vector. Computes the
 * `m` columns from `start` on; `get(r, j)` gives row r's element start + j. Writes the rounded
 * sums to `out`.
 */
export function sumDim0(
  dt: ComputeDType,
  nRows: number,
  m: number,
  get: (r: number, j: number) => number,
  out: Float32Array,
  lanes = VEC_LANES,
  start = 0,
  total = m,
): Float32Array {
  const R = rounder(dt);
  if (nRows <= 4) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let r = 0; r < nRows; r++) s = fround(s + get(r, j));
      out[j] = R(s);
    }
    return out;
  }
  const terms = new Float64Array(nRows);
  for (let j = 0; j < m; j++) {
    for (let r = 0; r < nRows; r++) terms[r] = get(r, j);
    out[j] = R(0 + sumTerms(terms, nRows, columnCascades(dt, start + j, total, lanes)));
  }
  return out;
}

/** fp32 x·x + acc, fused (one rounding) or not. */
function sqAcc(fma: boolean, acc: number, x: number): number {
  if (!fma) return fround(acc + fround(x * x));
  // x·x is exact in double for fp32 x (48 bits), so acc + x·x rounds once: an FMA.
  return fround(acc + x * x);
}

/**
 * `torch.norm(x, dim=-1)` of a [C, R] view with strides [1, C] (the transpose of a contiguous
 * [R, C] tensor): torch reduces it as an outer reduction, one running sum per column in row order —
 * fp32 (x·x fused into the sum where the build fuses, `normFma`), or in the dtype with each
 * product rounded (torch 1.13's bf16/fp16); then sqrt, rounded to the dtype. Column j of `x`
 * is x[i·C + j].
 */
export function normColumns(p: TorchProfile, dt: ComputeDType, x: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(cols);
  const inDtype = dt !== "F32" && p.stridedNormInDtype;
  for (let j = 0; j < cols; j++) {
    let acc = 0;
    for (let i = 0; i < rows; i++) {
      const v = x[i * cols + j];
      acc = inDtype ? roundTo(dt, acc + roundTo(dt, v * v)) : sqAcc(dt === "F32" ? p.normFma : true, acc, v);
    }
    out[j] = roundTo(dt, Math.sqrt(acc));
  }
  return out;
}

/**
 * `torch.norm(x)` / `torch.norm(x, dim=-1)` of a contiguous fp32 row: torch's vectorized
 * last-dim 2-norm (one 8-lane accumulator over whole vectors, lanes folded in order, then the
 * tail), sqrt, rounded once.
 */
export function normF32(p: TorchProfile, x: ArrayLike<number>, from = 0, n = x.length - from): number {
  const lanes = p.lanes;
  const acc = new Array<number>(lanes).fill(0);
  let d = 0;
  for (; d < n - (n % lanes); d += lanes) for (let k = 0; k < lanes; k++) acc[k] = sqAcc(p.normFma, acc[k], x[from + d + k]);
  let b = acc[0];
  for (let j = 1; j < lanes; j++) b = fround(b + acc[j]);
  for (; d < n; d++) b = sqAcc(p.normFma, b, x[from + d]);
  return fround(Math.sqrt(b));
}

/**
 * `torch.norm(x, dim=-1)` of a row of n values of dtype `dt` starting at `from`: fp32 rows as
 * normF32; bf16 rows as torch 2.x's reduced-float path (16 values per step, each 8-lane half
 * squared into one fp32 accumulator); fp16 rows, which that fast path leaves out (torch 2.x's
 * norm kernel lists float, double and bfloat16 only), as the generic reduction: one fp32
 * accumulator in index order (acc + x·x, not fused). sqrt in fp32, rounded to the dtype.
 */
export function norm(p: TorchProfile, dt: ComputeDType, x: ArrayLike<number>, from = 0, n = x.length - from): number {
  if (dt === "F32") return normF32(p, x, from, n);
  if (dt === "F16" && p.halfNormSequential) {
    let acc = 0;
    for (let d = 0; d < n; d++) acc = sqAcc(false, acc, x[from + d]);
    return roundTo(dt, Math.sqrt(acc));
  }
  const lanes = p.lanes;
  const step = 2 * lanes;
  const acc = new Array<number>(lanes).fill(0);
  let d = 0;
  for (; d < n - (n % step); d += step) {
    for (let k = 0; k < lanes; k++) acc[k] = sqAcc(false, acc[k], x[from + d + k]);
    for (let k = 0; k < lanes; k++) acc[k] = sqAcc(false, acc[k], x[from + d + lanes + k]);
  }
  let b = acc[0];
  for (let j = 1; j < lanes; j++) b = fround(b + acc[j]);
  for (; d < n; d++) b = sqAcc(false, b, x[from + d]);
  return roundTo(dt, Math.sqrt(b));
}
