/**
 * `torch.dot` on CPU as a torch build computes it, for `--numerics mergekit-torch1.13` (karcher).
 */
import { ParamError } from "../errors/index.js";
import { mklSdot } from "./mkl-vml-float32.js";
import { roundTo, type ComputeDType, type TorchProfile } from "./torch-float.js";

const f = Math.fround;

/** torch 1.13 sends a bf16 `dot` longer than this to oneDNN's matmul (mkldnn_gemm_min_size, 16³). */
const ONEDNN_DOT_MIN = 4096;
/** oneDNN 2.6's brgemm matmul (avx512_core_bf16) reduces K in blocks of this many elements. */
const ONEDNN_K_BLOCK = 1024;
/** oneDNN 3.x's fp16 brgemm matmul (avx10_1_512, torch 2.x) reduces K in blocks of this many elements. */
const ONEDNN3_F16_K_BLOCK = 512;
const MIN_NORMAL = 2 ** -126;
/** VDPBF16PS treats subnormal inputs as 0 and flushes subnormal results to 0 (DAZ, FTZ). */
const flush = (v: number): number => (Math.abs(v) < MIN_NORMAL ? v * 0 : v);

/**
 * `torch.dot(x, y)` of contiguous vectors on CPU, one torch thread. The pip wheel (torch 2.x):
 * float32 by MKL's sdot (mkl-vml-float32.ts), bf16/fp16 by its AVX-512 `*_dot_with_fp32_arith`
 * (below). torch 1.13 without MKL (Debian's build):
 * - float32: the BLAS `sdot` (reference BLAS: one fp32 accumulator in index order, each
 *   product rounded);
 * - bfloat16 up to 4096 elements: torch's naive loop, whose product and running sum are both
 *   bf16 (`scalar_t sum`), each rounded as it goes;
 * - longer bfloat16 vectors: oneDNN's matmul (1×K by K×1), the brgemm kernel with VDPBF16PS:
 *   per block of 1024 elements one fp32 accumulator from 0, each pair of elements added odd
 *   first, then even (the instruction's order), with DAZ/FTZ; the block sums are added to the
 *   fp32 result in order, which is rounded once to bf16. Checked against torch.dot on vectors
 *   built to land within fp32 ulps of a bf16 rounding boundary (4097–16384 elements), where every
 *   other order tried (index order, pairwise, 8/16 lanes) disagrees with torch on some.
 */
export function torchDot(p: TorchProfile, dt: ComputeDType, x: Float32Array, y: Float32Array): number {
  if (p.f32Mkl) {
    if (dt === "F32") return mklSdot(x, y);
    if (x.length <= ONEDNN_DOT_MIN) return roundTo(dt, reducedDotTorch2(x, y));
    if (dt === "F16") return roundTo(dt, blockedDot(x, y, ONEDNN3_F16_K_BLOCK));
    throw new ParamError(
      `torch 2.x sends a bfloat16 dot of more than ${ONEDNN_DOT_MIN} elements to oneDNN's AMX kernel, whose accumulation is not replayed; use --numerics mergekit-torch1.13 or default`,
    );
  }
  const n = x.length;
  let s = 0;
  if (dt === "F32") {
    for (let j = 0; j < n; j++) s = f(s + f(x[j] * y[j]));
    return s;
  }
  if (dt === "F16") throw new ParamError("torch 1.13 has no float16 dot on CPU (mergekit's karcher fails there); set dtype: bfloat16 or float32");
  if (n <= ONEDNN_DOT_MIN) {
    for (let j = 0; j < n; j++) s = roundTo(dt, s + roundTo(dt, x[j] * y[j]));
    return s;
  }
  for (let b = 0; b < n; b += ONEDNN_K_BLOCK) {
    const end = Math.min(n, b + ONEDNN_K_BLOCK);
    let acc = 0;
    for (let j = b; j < end; j += 2) {
      if (j + 1 < end) acc = flush(f(acc + flush(x[j + 1]) * flush(y[j + 1])));
      acc = flush(f(acc + flush(x[j]) * flush(y[j])));
    }
    s = f(s + acc);
  }
  return roundTo(dt, s);
}

/**
 * oneDNN 3.x's fp16 matmul (1×K by K×1, torch 2.x's dot over 4096 elements): per block of
 * `block` elements one fp32 sum from 0 in index order (products exact), the block sums added in
 * order. Checked on vectors built to land within fp32 ulps of an fp16 rounding boundary.
 */
function blockedDot(x: ArrayLike<number>, y: ArrayLike<number>, block: number): number {
  let s = 0;
  for (let b = 0; b < x.length; b += block) {
    let acc = 0;
    for (let j = b; j < Math.min(x.length, b + block); j++) acc = f(acc + x[j] * y[j]);
    s = f(s + acc);
  }
  return s;
}

/** Folds 16 lanes by halves (i + 8, + 4, + 2, + 1), as the AVX-512 shuffles do. */
function fold16(v: Float64Array): number {
  for (let w = 8; w >= 1; w /= 2) for (let i = 0; i < w; i++) v[i] = f(v[i] + v[i + w]);
  return v[0];
}

/**
 * torch 2.x's `bf16_dot_with_fp32_arith` / `fp16_dot_with_fp32_arith` (AVX-512 build, read from
 * the wheel's machine code): 128 elements per step into eight 16-lane fp32 accumulators (register
 * k takes elements 16k…16k+15 of each step; products are exact in fp32, so the FMA is a rounded
 * add), combined as ((a0+a4) + (a2+a6)) + ((a3+a7) + (a1+a5)) and folded; then 32 elements per
 * step into one accumulator, folded and added to that; then the rest one by one. Returns fp32.
 */
function reducedDotTorch2(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  const acc = new Float64Array(128);
  const main = n - (n % 128);
  for (let i = 0; i < main; i += 128) for (let k = 0; k < 128; k++) acc[k] = f(acc[k] + x[i + k] * y[i + k]);
  const v = new Float64Array(16);
  for (let l = 0; l < 16; l++) {
    const a = (k: number): number => acc[16 * k + l];
    v[l] = f(f(f(a(0) + a(4)) + f(a(2) + a(6))) + f(f(a(3) + a(7)) + f(a(1) + a(5))));
  }
  const s1 = fold16(v);
  const w = new Float64Array(16);
  const mid = n - (n % 32);
  for (let i = main; i < mid; i += 32) {
    for (let l = 0; l < 16; l++) w[l] = f(w[l] + x[i + l] * y[i + l]);
    for (let l = 0; l < 16; l++) w[l] = f(w[l] + x[i + 16 + l] * y[i + 16 + l]);
  }
  let s = f(fold16(w) + s1);
  for (let i = mid; i < n; i++) s = f(s + f(x[i] * y[i]));
  return s;
}
