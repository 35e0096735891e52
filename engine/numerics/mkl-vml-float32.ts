/**
 * MKL's float32 VML `vmsSin`, `vmsCos`, `vmsAcos`, `vmsLn` in high-accuracy mode and `sdot`, as
 * torch 2.x's pip wheel (MKL 2024.2, statically linked into libtorch_cpu.so) computes them on an
 * AVX-512 CPU: torch.sin/cos/acos/log of float32 tensors call `vms*(n, x, y, VML_HA | …)`, which
 * dispatches to the `mkl_vml_kernel_s*_Z0HAynn` kernels; torch.dot of float32 vectors calls
 * `sdot_` → `mkl_blas_avx512_xsdot`. Each kernel is replayed instruction for instruction from
 * that binary (objdump of libtorch_cpu.so; the constants are the bytes of its `vs*_data` tables),
 * double operations with an exact double FMA. The kernels' main loop (32 floats a step) and their
 * masked tail (16 a step, so also 0-d tensors) compute the same, so the result of an element does
 * not depend on its position. Inputs on a slow path that is not replayed throw a ParamError.
 * Checked against torch (scripts/numerics/mkl-reference.py, mkl-vml-float32.test.ts).
 */
import { ParamError } from "../errors/index.js";
import { fma32 as fmaf, fma64 } from "./fma64.js";
import { f32Bits as bitsF, f32FromBits as fromBitsF, f64FromWords as fromBitsD } from "./float-bits.js";
import { rsqrt14 } from "./rsqrt14.js";

const f = Math.fround;

// vssin_data (+0x13c0 …): 1/π as float, the 1.5·2²³ shifter, π in two doubles, the odd polynomial
const SIN = {
  invPi: fromBitsF(0x3ea2f983),
  shifter: fromBitsF(0x4b400000),
  pi1: fromBitsD(0x400921fb, 0x54440000),
  pi2: fromBitsD(0x3d968c23, 0x4c4c6629),
  c4: fromBitsD(0x3ec5dbdf, 0x0e4c7dee),
  c3: fromBitsD(0xbf29f6ff, 0xeea73463),
  c2: fromBitsD(0x3f8110ed, 0x3804ca96),
  c1: fromBitsD(0xbfc55554, 0xbc836587),
  big: 10000, // |x| above this (or NaN) takes the large-argument path
};

function refuse(fn: string, x: number, why: string): never {
  throw new ParamError(`MKL ${fn}(${x}): ${why}; this input's path of the MKL kernel is not replayed`);
}

/**
 * MKL vmsSin (HA) of one float32: n = fmaf(|x|, 1/π, shifter) in float (its low bit is n's parity),
 * r = |x| − n·π₁ − n·π₂ by double FMAs, sin r = r + r·r²·P(r²) by double FMAs, rounded to float,
 * the sign flipped for odd n and negative x. |x| > 10000 (and ±inf) take MKL's Payne–Hanek path,
 * lane by lane: refused here.
 */
export function mklSinf(xIn: number): number {
  const x = f(xIn);
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (!(a <= SIN.big)) refuse("sin", x, `|x| > ${SIN.big}`);
  const t = fmaf(a, SIN.invPi, SIN.shifter);
  const odd = bitsF(t) & 1;
  const n = f(t - SIN.shifter);
  let r = fma64(-n, SIN.pi1, a);
  r = fma64(-SIN.pi2, n, r);
  const r2 = r * r;
  let p = fma64(r2, SIN.c4, SIN.c3);
  p = fma64(p, r2, SIN.c2);
  p = fma64(p, r2, SIN.c1);
  p *= r2;
  const y = f(fma64(p, r, r));
  return fromBitsF(bitsF(y) ^ (odd << 31) ^ (bitsF(x) & 0x80000000));
}

// vscos_data: π/2 as float and ½; 1/π, the shifter, π₁, π₂ and the polynomial are the same bytes as sin's
const COS = { halfPi: fromBitsF(0x3fc90fdb), half: 0.5 };

/** MKL vmsCos (HA) of one float32: sin's kernel on r = |x| − (n − ½)·π, n from (|x| + π/2)/π. */
export function mklCosf(xIn: number): number {
  const x = f(xIn);
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (!(a <= SIN.big)) refuse("cos", x, `|x| > ${SIN.big}`);
  const t = fmaf(f(a + COS.halfPi), SIN.invPi, SIN.shifter);
  const odd = bitsF(t) & 1;
  const n = f(f(t - SIN.shifter) - COS.half);
  let r = fma64(-n, SIN.pi1, a);
  r = fma64(-SIN.pi2, n, r);
  const r2 = r * r;
  let p = fma64(r2, SIN.c4, SIN.c3);
  p = fma64(p, r2, SIN.c2);
  p = fma64(p, r2, SIN.c1);
  p *= r2;
  const y = f(fma64(p, r, r));
  return fromBitsF(bitsF(y) ^ (odd << 31));
}

/**
 * The reciprocal MKL's ln starts from: (VRCP14PS(x) + 0x20000) & 0xfffc0000, the estimate rounded
 * half up to 5 fraction bits. For x = (1 + m/2²³)·2^k it is R(1 + m/2²³)·2^−k, and R over [1, 2) is
 * a step function of m; these are its steps [first m, bits of R], measured on the CPU by
 * scripts/numerics/rcp14-steps.c (which also checks the scaling over the other binades).
 */
const LN_RCP_STEPS: readonly (readonly [number, number])[] = [
  [0, 0x3f800000],
  [66304, 0x3f7c0000],
  [201600, 0x3f780000],
  [341248, 0x3f740000],
  [485504, 0x3f700000],
  [634496, 0x3f6c0000],
  [788480, 0x3f680000],
  [948480, 0x3f640000],
  [1113856, 0x3f600000],
  [1284864, 0x3f5c0000],
  [1462272, 0x3f580000],
  [1646592, 0x3f540000],
  [1837440, 0x3f500000],
  [2036352, 0x3f4c0000],
  [2242432, 0x3f480000],
  [2457344, 0x3f440000],
  [2681216, 0x3f400000],
  [2914176, 0x3f3c0000],
  [3156992, 0x3f380000],
  [3410816, 0x3f340000],
  [3675904, 0x3f300000],
  [3953280, 0x3f2c0000],
  [4243968, 0x3f280000],
  [4548224, 0x3f240000],
  [4867584, 0x3f200000],
  [5203328, 0x3f1c0000],
  [5556352, 0x3f180000],
  [5928064, 0x3f140000],
  [6320384, 0x3f100000],
  [6734848, 0x3f0c0000],
  [7173120, 0x3f080000],
  [7637632, 0x3f040000],
  [8131200, 0x3f000000],
];

/**
 * The slow path's reciprocal (denormal x, and x ≥ 2¹²⁶ where the fast one is not normal):
 * VRNDSCALEPS(VRCP14PS(m), 0x58), the estimate rounded to nearest even at 5 fraction bits, of the
 * mantissa m ∈ [0.5, 1) of x; steps [first fraction of m, bits] from the same program.
 */
const LN_SLOW_RCP_STEPS: readonly (readonly [number, number])[] = [
  [0, 0x40000000],
  [66304, 0x3ffc0000],
  [201600, 0x3ff80000],
  [341248, 0x3ff40000],
  [485376, 0x3ff00000],
  [634496, 0x3fec0000],
  [788352, 0x3fe80000],
  [948480, 0x3fe40000],
  [1113728, 0x3fe00000],
  [1284864, 0x3fdc0000],
  [1462144, 0x3fd80000],
  [1646592, 0x3fd40000],
  [1837312, 0x3fd00000],
  [2036352, 0x3fcc0000],
  [2242304, 0x3fc80000],
  [2457344, 0x3fc40000],
  [2681088, 0x3fc00000],
  [2914176, 0x3fbc0000],
  [3156864, 0x3fb80000],
  [3410816, 0x3fb40000],
  [3675776, 0x3fb00000],
  [3953280, 0x3fac0000],
  [4243712, 0x3fa80000],
  [4548224, 0x3fa40000],
  [4867328, 0x3fa00000],
  [5203328, 0x3f9c0000],
  [5556096, 0x3f980000],
  [5928064, 0x3f940000],
  [6320128, 0x3f900000],
  [6734848, 0x3f8c0000],
  [7172864, 0x3f880000],
  [7637632, 0x3f840000],
  [8130944, 0x3f800000],
];

// vsln_data_avx512: −ln(1 + i/32) as a float hi part (+0x80) and lo part (+0x100), ln 2 in two
// floats (+0x380, +0x3c0), the polynomial in r = R·x − 1 (+0x2c0, +0x300, +0x340)
const LN_HI = [
  0x0, 0xbcfc0000, 0xbd786000, 0xbdb78000, 0xbdf14000, 0xbe14a800, 0xbe2ff800, 0xbe4a9000, 0xbe648000, 0xbe7dc800, 0xbe8b3c00, 0xbe974800, 0xbea30c00,
  0xbeae8c00, 0xbeb9d000, 0xbec4d000, 0xbecf9800, 0xbeda2800, 0xbee48000, 0xbeeea400, 0xbef89400, 0xbf012a00, 0xbf05f400, 0xbf0aa600, 0xbf0f4200, 0xbf13ca00,
  0xbf183e00, 0xbf1ca000, 0xbf20ec00, 0xbf252800, 0xbf295200, 0xbf2d6a00,
].map(fromBitsF);
const LN_LO = [
  0x0, 0xb726c39e, 0x37679ff7, 0xb7528ae5, 0x377891d5, 0xb725f040, 0xb6c1c29e, 0xb73539e9, 0x35838656, 0xb6436af2, 0x370d5151, 0x36ea28f7, 0xb63c21c6,
  0xb776fd60, 0x37202511, 0xb74e1b05, 0xb70fb2fe, 0x36084337, 0x36038656, 0x36afd9f2, 0xb675faf0, 0xb7152d2f, 0x36d1bdad, 0xb5f4bd35, 0xb77af382, 0xb770944e,
  0xb7399a79, 0x3779654f, 0xb6fe8467, 0x367449f8, 0x3716cd22, 0xb4186b3e,
].map(fromBitsF);
// the slow path's tables (+0x180 hi, +0x200 lo): ln 2 − ln(1 + i/32)
const LN_SLOW_HI = [
  0x3f317200, 0x3f299200, 0x3f21ec00, 0x3f1a8200, 0x3f134c00, 0x3f0c4800, 0x3f057400, 0x3efd9c00, 0x3ef0a400, 0x3ee40000, 0x3ed7a800, 0x3ecb9c00, 0x3ebfd800,
  0x3eb45800, 0x3ea91400, 0x3e9e1400, 0x3e934c00, 0x3e88bc00, 0x3e7cc800, 0x3e688000, 0x3e54a000, 0x3e412000, 0x3e2df800, 0x3e1b3000, 0x3e08c000, 0x3ded4000,
  0x3dc9a000, 0x3da6a000, 0x3d843000, 0x3d44a000, 0x3d020000, 0x3c810000,
].map(fromBitsF);
const LN_SLOW_LO = [
  0x35bfbe8e, 0xb70ecbcc, 0x377f97c9, 0xb73a9314, 0xb76f7659, 0xb70df86e, 0xb691d2fb, 0xb71d4217, 0x3621a272, 0xb5c71755, 0x37254923, 0x370d0c4d, 0xb5b884fd,
  0xb75f058e, 0x37381ce3, 0xb7362333, 0xb6ef7659, 0x3668227e, 0x3663659e, 0x36dfc995, 0xb6161ba9, 0xb6fa6ab9, 0x3700d6a8, 0xb4d3fa9c, 0xb762fbb0, 0xb7589c7c,
  0xb721a2a7, 0xb76ea2e0, 0xb6ce94c4, 0x36aa14a0, 0x372ec4f4, 0x35acb127,
].map(fromBitsF);
const LN = {
  ln2Hi: fromBitsF(0x3f317200),
  ln2Lo: fromBitsF(0x35bfbe8e),
  c3: fromBitsF(0xbe800810),
  c2: fromBitsF(0x3eaab11e),
  c1: fromBitsF(0xbf000000),
};

/** The step of `steps` that fraction m falls in. */
function stepOf(steps: readonly (readonly [number, number])[], m: number): number {
  let lo = 0;
  let hi = steps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (steps[mid][0] <= m) lo = mid;
    else hi = mid - 1;
  }
  return steps[lo][1];
}

/** The rounded reciprocal's bits for a positive normal float32 with bits b (0 where R is not normal). */
function lnReciprocalBits(b: number): number {
  const r = stepOf(LN_RCP_STEPS, b & 0x7fffff);
  const e = ((r >>> 23) & 0xff) - ((b >>> 23) - 127);
  return e > 0 && e < 255 ? ((r & 0x807fffff) | (e << 23)) >>> 0 : 0;
}

/**
 * MKL vmsLn (HA) of one float32, all in float: R the rounded reciprocal, r = fmaf(R, x, −1),
 * ln x = (−ln R)_hi + e·ln2_hi + r + [r²·(c1 + r·(c2 + r·c3)) + (−ln R)_lo + e·ln2_lo], the sum
 * arranged as the kernel adds it. Denormal and huge x take the kernel's second path (replayed too).
 */
export function mklLogf(xIn: number): number {
  const x = f(xIn);
  if (Number.isNaN(x)) return NaN;
  const b = bitsF(x);
  const rb = x > 0 && b >>> 23 !== 0 && x !== Infinity ? lnReciprocalBits(b) : 0;
  if (rb === 0) return mklLogfSpecial(x);
  const rc = fromBitsF(rb);
  const e = (rb >>> 23) - 127; // vgetexpps
  const i = (rb >>> 18) & 31;
  const r = fmaf(rc, x, -1);
  let p = fmaf(r, LN.c3, LN.c2);
  const r2 = f(r * r);
  p = fmaf(p, r, LN.c1);
  p = fmaf(p, r2, fmaf(-LN.ln2Lo, e, LN_LO[i]));
  const t = fmaf(e, -LN.ln2Hi, LN_HI[i]);
  const s = f(t + r);
  const rLo = f(r - f(s - t));
  return f(s + f(p + rLo));
}

function mklLogfSpecial(x: number): number {
  if (x === 0) return -Infinity;
  if (x < 0) return NaN;
  if (x === Infinity) return Infinity;
  // vgetmantps (interval [0.5, 1)) and vgetexpps, denormals normalized
  let b = bitsF(x);
  let e0 = (b >>> 23) - 127;
  if (b >>> 23 === 0) {
    b = bitsF(x * 2 ** 64);
    e0 = (b >>> 23) - 127 - 64;
  }
  const m = fromBitsF((b & 0x7fffff) | (126 << 23));
  const rb = stepOf(LN_SLOW_RCP_STEPS, b & 0x7fffff);
  const rc = fromBitsF(rb);
  const e = f(e0 - ((rb >>> 23) - 127));
  const i = (rb >>> 18) & 31;
  const r = fmaf(m, rc, -1);
  const t = fmaf(e, LN.ln2Hi, LN_SLOW_HI[i]);
  const s = f(t + r);
  const c = f(s - t);
  let p = fmaf(r, LN.c3, LN.c2);
  const r2 = f(r * r);
  p = fmaf(p, r, LN.c1);
  const lo = fmaf(r2, p, fmaf(LN.ln2Lo, e, LN_SLOW_LO[i]));
  return f(s + f(lo + f(r - c)));
}

// vsacos_data: the polynomial of asin(√z)/√z − 1 in z (+0x280 … +0x380), the Newton step's
// constants (+0x200, +0x240), π/2 and π as float hi parts (+0x3c0, +0x440) with their lo parts
// (+0x400, +0x480)
const ACOS = {
  p5: fromBitsF(0x3d2edc07),
  p4: fromBitsF(0x3cc32a6b),
  p3: fromBitsF(0x3d3a9ab4),
  p2: fromBitsF(0x3d997c12),
  p1: fromBitsF(0x3e2aaaff),
  n1: fromBitsF(0xbdc00004),
  n0: fromBitsF(0x3e800001),
  halfPiHi: fromBitsF(0x3fc90fdb),
  halfPiLo: fromBitsF(0xb33bbd2e),
  piHi: fromBitsF(0x40490fdb),
  piLo: fromBitsF(0xb3bbbd2e),
  tiny: 2 ** -32,
};

/**
 * MKL vmsAcos (HA) of one float32: y = (1 − |x|)/2, z = min(x², y); acos x = π/2 − asin x for small
 * |x| (z = x²), else 2·asin(√y) (+ π for negative x) with √(2y) from VRSQRT14PS(y) cut to 12 bits
 * and one float correction step; asin(√z)/√z − 1 a polynomial in z; π/2 and π as float hi + lo.
 */
export function mklAcosf(xIn: number): number {
  const x = f(xIn);
  if (!(Math.abs(x) <= 1)) return NaN; // |x| > 1 and NaN: vsacos_cout_rare
  const neg = x < 0 || Object.is(x, -0);
  const a = -Math.abs(x);
  const y = fmaf(0.5, a, 0.5); // (1 − |x|)/2
  const z = Math.min(f(a * a), y);
  const large = z >= y; // acos via 2·asin(√y)
  let corr = 0;
  let s = a;
  if (large) {
    const rs = y >= ACOS.tiny ? fromBitsF(bitsF(rsqrt14(y)) & 0xfffff800) : 0;
    const w = f(y + y);
    const wHi = fromBitsF(bitsF(w) & 0xffffe000);
    const wLo = f(w - wHi);
    const sh = f(wHi * rs);
    const sl = f(wLo * rs);
    const e = f(fmaf(sh, rs, -2) + f(sl * rs));
    const g = f(f(sh + sl) * e);
    corr = fmaf(fmaf(ACOS.n1, e, ACOS.n0), g, -sl);
    s = sh;
  }
  let q = fmaf(f(z * z), fmaf(z, ACOS.p5, ACOS.p4), fmaf(z, ACOS.p3, ACOS.p2));
  q = f(fmaf(z, q, ACOS.p1) * z);
  let lo = large ? (neg ? ACOS.piLo : 0) : ACOS.halfPiLo;
  if (neg) lo = -lo;
  let r = f(fmaf(q, f(s - corr), f(lo - corr)) + s);
  if (neg) r = -r;
  return f(r + (large ? (neg ? ACOS.piHi : 0) : ACOS.halfPiHi));
}

/**
 * mkl_blas_avx512_xsdot on contiguous vectors: four accumulators of 16 float lanes, each lane
 * advanced by a float FMA; 64 elements a step (16 to each accumulator), then 32 (two accumulators),
 * 16 (the first) and a masked remainder (the first); the accumulators folded as
 * (acc₂ + acc₃) + (acc₁ + acc₀) lane by lane, then lanes i + 8 onto i, i + 4 onto i, and two
 * horizontal adds: (l₀ + l₁) + (l₂ + l₃).
 */
function xsdot(x: Float32Array, y: Float32Array, start: number, n: number): number {
  const acc = new Float64Array(64); // 4 × 16 float32 values
  let p = start;
  const end64 = start + (n & ~63);
  for (; p < end64; p += 64) {
    for (let k = 0; k < 64; k++) acc[k] = fmaf(x[p + k], y[p + k], acc[k]);
  }
  const rem = n & 63;
  if (rem & 32) {
    for (let k = 0; k < 32; k++) acc[k] = fmaf(x[p + k], y[p + k], acc[k]);
    p += 32;
  }
  if (rem & 16) {
    for (let k = 0; k < 16; k++) acc[k] = fmaf(x[p + k], y[p + k], acc[k]);
    p += 16;
  }
  for (let k = 0; k < (rem & 15); k++) acc[k] = fmaf(x[p + k], y[p + k], acc[k]);
  const v = new Float64Array(16);
  for (let l = 0; l < 16; l++) v[l] = f(f(acc[32 + l] + acc[48 + l]) + f(acc[16 + l] + acc[l]));
  for (let l = 0; l < 8; l++) v[l] = f(v[l + 8] + v[l]);
  for (let l = 0; l < 4; l++) v[l] = f(v[l + 4] + v[l]);
  return f(f(v[0] + v[1]) + f(v[2] + v[3]));
}

/**
 * mkl_blas_avx512_xsdot with a stride other than 1 (positive strides): scalar float FMAs into four
 * accumulators A, B, C, D taking elements 4k, 4k + 1, 4k + 2, 4k + 3 of the first n & ~3; then
 * A + C and B + D, each advanced by one more element when n & 2, added, and advanced by the last
 * element when n & 1.
 */
function xsdotStrided(x: Float32Array, ix: number, y: Float32Array, iy: number, start: number, n: number): number {
  const acc = [0, 0, 0, 0];
  let px = start * ix;
  let py = start * iy;
  const n4 = n & ~3;
  for (let k = 0; k < n4; k++, px += ix, py += iy) acc[k & 3] = fmaf(x[px], y[py], acc[k & 3]);
  let ac = f(acc[0] + acc[2]);
  let bd = f(acc[1] + acc[3]);
  if (n & 2) {
    ac = fmaf(x[px], y[py], ac);
    bd = fmaf(x[px + ix], y[py + iy], bd);
    px += 2 * ix;
    py += 2 * iy;
  }
  const s = f(ac + bd);
  return n & 1 ? fmaf(x[px], y[py], s) : s;
}

/**
 * torch.dot of two contiguous float32 vectors as MKL's `sdot` computes it (torch 2.13 wheel,
 * AVX-512). With `threads` > 1 MKL splits vectors of 8192 or more elements into
 * min(⌈n/4096⌉, threads) near-equal parts (the first n mod parts one longer), runs xsdot on each and
 * adds the partial sums in order; torch.set_num_threads(1) gives one part.
 */
export function mklSdot(x: Float32Array, y: Float32Array, threads = 1): number {
  if (x.length !== y.length) throw new ParamError(`MKL sdot: vectors of ${x.length} and ${y.length} elements`);
  if (!(Number.isInteger(threads) && threads >= 1)) throw new ParamError(`MKL sdot: threads must be a positive integer, got ${threads}`);
  return sdotSplit(x.length, threads, (start, len) => xsdot(x, y, start, len));
}

/**
 * torch.dot of strided float32 vectors (a view with stride incx over `x`, incy over `y`, n elements
 * each, strides ≥ 1) as MKL's `sdot` computes it; `threads` as for `mklSdot`.
 */
export function mklSdotStrided(n: number, x: Float32Array, incx: number, y: Float32Array, incy: number, threads = 1): number {
  for (const [name, inc, v] of [
    ["incx", incx, x],
    ["incy", incy, y],
  ] as const) {
    if (!(Number.isInteger(inc) && inc >= 1)) throw new ParamError(`MKL sdot: ${name} must be a positive integer, got ${inc}`);
    if (n > 0 && (n - 1) * inc >= v.length) throw new ParamError(`MKL sdot: ${n} elements with ${name} ${inc} overrun a vector of ${v.length}`);
  }
  if (!(Number.isInteger(threads) && threads >= 1)) throw new ParamError(`MKL sdot: threads must be a positive integer, got ${threads}`);
  if (incx === 1 && incy === 1) return sdotSplit(n, threads, (start, len) => xsdot(x, y, start, len));
  return sdotSplit(n, threads, (start, len) => xsdotStrided(x, incx, y, incy, start, len));
}

/** mkl_blas_sdot's split over threads (n ≥ 8192) and the in-order sum of the parts. */
function sdotSplit(n: number, threads: number, part: (start: number, len: number) => number): number {
  if (n <= 0) return 0;
  const parts = n > 0x1fff ? Math.min(Math.ceil(n / 4096), threads) : 1;
  if (parts === 1) return part(0, n);
  const q = Math.floor(n / parts);
  const r = n - q * parts;
  let sum = 0;
  for (let t = 0; t < parts; t++) {
    const p = part(t < r ? t * (q + 1) : t * q + r, t < r ? q + 1 : q);
    sum = t === 0 ? p : f(sum + p);
  }
  return sum;
}
