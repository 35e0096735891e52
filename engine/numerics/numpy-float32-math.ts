/**
 * numpy 1.24's float32 transcendental functions as mergekit's slerp calls them on x86-64 with
 * AVX-512 (Debian's python3-numpy): `np.sin` is numpy's own SIMD routine (Cody-Waite reduction,
 * polynomials evaluated with FMA; max 1.49 ulp), `np.arccos` is Intel SVML's `__svml_acosf16`
 * (LA variant). Both are replayed op for op in float32 with an exact single-rounding FMA and
 * SVML's VRSQRT14PS estimate (./rsqrt14.ts), so their results are numpy's bits, not correctly
 * rounded values (np.arccos differs from the correctly rounded arccos on ~35 % of inputs).
 */

import { f32Bits as bits, f32FromBits as fromBits } from "./float-bits.js";
import { rsqrt14 } from "./rsqrt14.js";

const f = Math.fround;
const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);

/** fmaf(a, b, c) for float32 inputs, rounded once: a·b is exact in double, the sum is rounded to
 *  odd in double (53 ≥ 24 + 2 bits), then to float32 — which equals one rounding of a·b + c. */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  if (!Number.isFinite(s)) return f(s);
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return f(s);
  f64[0] = s;
  if ((u64[0] & 1n) === 0n) u64[0] += s > 0 === err > 0 ? 1n : -1n;
  return f(f64[0]);
}

/** numpy's float32 np.sin (simd_sincos_f32, |x| ≤ 117435.992; larger |x| goes to libm there). */
export function numpySinf(xIn: number): number {
  if (Number.isNaN(xIn)) return NaN;
  const x = f(xIn);
  if (Math.abs(x) > f(117435.992)) return f(Math.sin(x));
  let q = f(x * f(0.6366197466850281));
  q = f(q + 12582912.0);
  q = f(q - 12582912.0);
  let r = fmaf(q, f(-1.570796012878418), x);
  r = fmaf(q, f(-3.1391647326017846e-7), r);
  r = fmaf(q, f(-5.390302529957765e-15), r);
  const r2 = f(r * r);
  let c = fmaf(f(2.4372266125283204e-5), r2, f(-0.001388652017340064));
  c = fmaf(c, r2, f(0.04166661947965622));
  c = fmaf(c, r2, -0.5);
  c = fmaf(c, r2, 1);
  let s = fmaf(f(2.8404097065504175e-6), r2, f(-0.00019856491417158395));
  s = fmaf(s, r2, f(0.008333397097885609));
  s = fmaf(s, r2, f(-0.1666666716337204));
  s = fmaf(s, r2, 0);
  s = fmaf(s, r, r);
  const iq = Math.round(q); // q is already an integer
  let out = (iq & 1) === 0 ? s : c;
  if ((iq & 2) === 2) out = f(0 - out);
  return out;
}

const T = {
  small: fromBits(0x2f800000),
  two: fromBits(0x40000000),
  c512: fromBits(3183476740),
  c576: fromBits(1048576001),
  c640: fromBits(1026481159),
  c704: fromBits(1019423339),
  c768: fromBits(1027250868),
  c832: fromBits(1033468946),
  c896: fromBits(1042983679),
  pio2: fromBits(1070141403),
  pi: fromBits(1078530011),
};

/** numpy's float32 np.arccos on AVX-512 (SVML __svml_acosf16, main path; |x| > 1 gives NaN). */
export function numpyAcosf(xIn: number): number {
  const x = f(xIn);
  if (Number.isNaN(x) || Math.abs(x) > 1) return NaN;
  const negAbs = -Math.abs(x);
  const y = fmaf(negAbs, 0.5, 0.5); // Y = 0.5 − 0.5|x|
  const x2 = f(negAbs * negAbs);
  const r = y < T.small ? 0 : rsqrt14(y);
  const rr = x2 < y ? x2 : y; // vminps(x², Y)
  const useSqrt = !(rr < y);
  const y2 = f(y + y);
  const rr2 = f(rr * rr);
  const rsq = f(r * r);
  const s = f(y2 * r);
  const e = fmaf(rsq, y2, -T.two);
  const p1 = fmaf(T.c768, rr, T.c832);
  const corr = fmaf(T.c512, e, T.c576);
  let poly = fmaf(T.c640, rr, T.c704);
  const se = f(s * e);
  poly = fmaf(rr2, poly, p1);
  const sq = fmaf(-se, corr, s);
  poly = fmaf(rr, poly, T.c896);
  const rp = f(poly * rr);
  const base = useSqrt ? sq : negAbs;
  const sx = fromBits(bits(base) ^ (bits(x) & 0x80000000));
  const body = fmaf(sx, rp, sx);
  const add = useSqrt ? (x < rr ? T.pi : 0) : T.pio2;
  return f(add + body);
}
