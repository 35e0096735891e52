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
/** One TDPBF16PS of oneDNN 3.x's AMX bf16 matmul (1×K by K×1) takes this many elements of K. */
const AMX_K_TILE = 32;
/**
 * Per-core L2 of the machines the torch 2.x parity was recorded on (Xeon with AMX, 2 MiB): oneDNN
 * sizes the K chunks of its AMX matmul from it (`platform::get_per_core_cache_size(2)`).
 */
const ONEDNN_L2_BYTES = 2 * 1024 * 1024;
const MIN_NORMAL = 2 ** -126;
/** VDPBF16PS treats subnormal inputs as 0 and flushes subnormal results to 0 (DAZ, FTZ). */
const flush = (v: number): number => (Math.abs(v) < MIN_NORMAL ? v * 0 : v);

/**
 * `torch.dot(x, y)` of contiguous vectors on CPU, one torch thread. The pip wheel (torch 2.x):
 * float32 by MKL's sdot (mkl-vml-float32.ts), bf16/fp16 up to 4096 elements by its AVX-512
 * `*_dot_with_fp32_arith` (below), longer ones by oneDNN's matmul (fp16: blocks of 512; bf16: the
 * AMX kernel, `amxBf16Dot`). torch 1.13 without MKL (Debian's build):
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
    return roundTo(dt, amxBf16Dot(x, y));
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

/**
 * Elements per K chunk of oneDNN 3.12's AMX bf16 matmul for 1×K by K×1 on one thread
 * (amx_blocking_heuristics.cpp, `matmul_amx_blocking_params_micro_t::set_blocking_parameters`):
 * the brgemm batch starts as all ⌈K/32⌉ blocks of 32; when A + B + copied B (6 bytes per element
 * of K, plus C) exceed ¾ of L2, the batch is cut to ⌊batch / ⌊size/L2¾⌋⌋ or ⌈batch / ⌈size/L2¾⌉⌉,
 * whichever divides the blocks more evenly (not when K is a power of 2 ≥ 4096 and the quotient ≤ 2).
 * Returns K when the dot is one chunk. Checked against the kernels oneDNN generates
 * (`ONEDNN_JIT_DUMP`, scripts/numerics/onednn-amx-kchunks.sh) for 52 values of K from 4128 to 16 Mi.
 */
export function amxKChunk(k: number): number {
  const blocks = Math.ceil(k / AMX_K_TILE);
  let batch = blocks;
  const l2 = (3 * ONEDNN_L2_BYTES) / 4;
  const bytes = 6 * AMX_K_TILE * blocks + 2 + (k % AMX_K_TILE ? 4 : 0);
  const bigPow2 = k >= 4096 && 2 ** Math.round(Math.log2(k)) === k;
  const divMin = Math.floor(bytes / l2);
  const divMax = Math.ceil(bytes / l2);
  if (divMin > (bigPow2 ? 2 : 0) && batch > 1) {
    const kc1 = Math.max(Math.floor(batch / divMin), 1);
    const kc2 = Math.ceil(batch / divMax);
    const tail1 = blocks % kc1;
    const tail2 = blocks % kc2;
    batch = !(tail1 === 0 || tail2 < tail1) || tail2 === 0 ? kc2 : kc1;
  }
  return Math.min(k, AMX_K_TILE * batch);
}

/**
 * torch 2.x's bf16 dot over 4096 elements: oneDNN 3.12's AMX brgemm matmul (1×K by K×1). One C
 * tile starts at 0 per K chunk (`amxKChunk`) and takes one TDPBF16PS per 32 elements (the tail
 * zero-padded). TDPBF16PS, as probed on the hardware (scripts/numerics/tdpbf16ps-probe.c): the even elements of the 32 and the odd
 * ones go to two fp32 sums from 0, each product exact and each add rounded (RNE, DAZ/FTZ); the
 * two are added (rounded), then that is added to C (rounded). Chunk sums are added in order in
 * fp32 (`vaddps`, no FTZ); the caller rounds the result to bf16 (`vcvtneps2bf16`: RNE, a
 * subnormal input taken as 0, done here). Returns fp32.
 */
export function amxBf16Dot(x: ArrayLike<number>, y: ArrayLike<number>, chunk = amxKChunk(x.length)): number {
  const n = x.length;
  let total = 0;
  for (let c0 = 0; c0 < n; c0 += chunk) {
    const c1 = Math.min(n, c0 + chunk);
    let acc = 0;
    for (let t = c0; t < c1; t += AMX_K_TILE) {
      const end = Math.min(c1, t + AMX_K_TILE);
      let even = 0;
      let odd = 0;
      for (let j = t; j < end; j += 2) {
        even = flush(f(even + flush(x[j]) * flush(y[j])));
        if (j + 1 < end) odd = flush(f(odd + flush(x[j + 1]) * flush(y[j + 1])));
      }
      acc = flush(f(acc + flush(f(even + odd))));
    }
    total = c0 === 0 ? acc : f(total + acc);
  }
  return flush(total); // vcvtneps2bf16 takes a subnormal sum of chunks as 0
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
