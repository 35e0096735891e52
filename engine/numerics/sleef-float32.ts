/**
 * torch's float32 `sin`, `cos` and `acos` on x86-64 CPUs: ATen evaluates them through
 * Vectorized<float> for every tensor (full vectors, the partial last vector and 0-d tensors
 * alike), which calls SLEEF's 1.0-ulp routines `Sleef_{sin,cos,acos}f16_u10` (AVX-512 build, where
 * SLEEF's `vmla` is a fused multiply-add). bf16/fp16 tensors go through the same routine on their
 * values widened to float32. Each routine is replayed op for op (SLEEF's sleefsimdsp.c
 * `xsinf_u1`, `xcosf_u1`, `xacosf_u1` and the double-float helpers of df.h with ENABLE_FMA_SP), so
 * the results are torch's bits, not correctly rounded values.
 */
import { ParamError } from "../errors/index.js";
import { f32Bits as bitsOf, f32FromBits as fromBits } from "./float-bits.js";
import { fmaf } from "./numpy-float32-math.js";

const f = Math.fround;
type DF = [number, number];

const add = (a: number, b: number): number => f(a + b);
const sub = (a: number, b: number): number => f(a - b);
const mul = (a: number, b: number): number => f(a * b);
/** x·y + z, one rounding (vfma / vmla on AVX-512). */
const fma = fmaf;

/** vrint: round half to even. */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const dfadd = (x: number, y: number): DF => {
  const s = add(x, y);
  return [s, add(sub(x, s), y)];
};
const dfadd2 = (x: number, y: number): DF => {
  const s = add(x, y);
  const v = sub(s, x);
  return [s, add(sub(x, sub(s, v)), sub(y, v))];
};
const dfadd2_f_df = (x: number, y: DF): DF => {
  const s = add(x, y[0]);
  const v = sub(s, x);
  return [s, add(add(sub(x, sub(s, v)), sub(y[0], v)), y[1])];
};
const dfadd_df_f = (x: DF, y: number): DF => {
  const s = add(x[0], y);
  return [s, add(add(sub(x[0], s), y), x[1])];
};
const dfadd2_df_f = (x: DF, y: number): DF => {
  const s = add(x[0], y);
  const v = sub(s, x[0]);
  return [s, add(add(sub(x[0], sub(s, v)), sub(y, v)), x[1])];
};
const dfadd_f_df = (x: number, y: DF): DF => {
  const s = add(x, y[0]);
  return [s, add(add(sub(x, s), y[0]), y[1])];
};
const dfsub = (x: DF, y: DF): DF => {
  const s = sub(x[0], y[0]);
  const t = sub(add(sub(sub(x[0], s), y[0]), x[1]), y[1]);
  return [s, t];
};
const dfmul_f_f = (x: number, y: number): DF => {
  const s = mul(x, y);
  return [s, fma(x, y, -s)];
};
const dfmul = (x: DF, y: DF): DF => {
  const s = mul(x[0], y[0]);
  return [s, fma(x[0], y[1], fma(x[1], y[0], fma(x[0], y[0], -s)))];
};
const dfmulToF = (x: DF, y: DF): number => fma(x[0], y[0], fma(x[1], y[0], mul(x[0], y[1])));
const dfsqu = (x: DF): DF => {
  const s = mul(x[0], x[0]);
  return [s, fma(add(x[0], x[0]), x[1], fma(x[0], x[0], -s))];
};
const dfrec = (d: number): DF => {
  const s = f(1 / d);
  return [s, mul(s, fma(-d, s, 1))];
};
const dfscale = (d: DF, s: number): DF => [mul(d[0], s), mul(d[1], s)];
const dfsqrt = (d: number): DF => {
  const t = f(Math.sqrt(d));
  return dfscale(dfmul(dfadd2_f_df(d, dfmul_f_f(t, t)), dfrec(t)), 0.5);
};

const M_1_PI_F = f(1 / Math.PI); // M_1_PI as float
const PI_A2f = f(3.1414794921875);
const PI_B2f = f(0.00011315941810607910156);
const PI_C2f = f(1.9841872589410058936e-9);
/** Above this |x| SLEEF switches to a Payne–Hanek reduction (rempif), which is not replayed. */
const TRIGRANGEMAX2f = 125;

function checkRange(op: string, d: number): void {
  if (!(Math.abs(d) < TRIGRANGEMAX2f) && Number.isFinite(d))
    throw new ParamError(`torch.${op} of ${d}: |x| ≥ ${TRIGRANGEMAX2f} uses SLEEF's long argument reduction, which --numerics mergekit does not replay`);
}

const C1 = f(2.6083159809786593541503e-6);
const C2 = f(-0.0001981069071916863322258);
const C3 = f(0.00833307858556509017944336);
const C4 = f(-0.166666597127914428710938);

/** The shared polynomial: t·(1 + s·(C4 + s·(C3 + s·(C2 + s·C1)))) in double-float, for s = t². */
function sinPoly(t: DF): number {
  const s = dfsqu(t);
  let u = fma(C1, s[0], C2);
  u = fma(u, s[0], C3);
  const x = dfadd_f_df(1, dfmul(dfadd(C4, mul(u, s[0])), s));
  return dfmulToF(t, x);
}

/** torch.sin of a float32 value (Sleef_sinf16_u10). */
export function torchSinf(xIn: number): number {
  const d = f(xIn);
  if (Number.isNaN(d) || !Number.isFinite(d)) return NaN;
  checkRange("sin", d);
  const u = rint(mul(d, M_1_PI_F));
  const q = u;
  const v = fma(u, -PI_A2f, d);
  let s = dfadd2(v, mul(u, -PI_B2f));
  s = dfadd_df_f(s, mul(u, -PI_C2f));
  let r = sinPoly(s);
  if ((q & 1) === 1) r = -r;
  if (d === 0 && 1 / d < 0) return d;
  return r;
}

/** torch.cos of a float32 value (Sleef_cosf16_u10). */
export function torchCosf(xIn: number): number {
  const d = f(xIn);
  if (Number.isNaN(d) || !Number.isFinite(d)) return NaN;
  checkRange("cos", d);
  const dq = fma(rint(fma(d, M_1_PI_F, -0.5)), 2, 1);
  const q = dq;
  let s = dfadd2(d, mul(dq, f(-PI_A2f * 0.5)));
  s = dfadd2_df_f(s, mul(dq, f(-PI_B2f * 0.5)));
  s = dfadd2_df_f(s, mul(dq, f(-PI_C2f * 0.5)));
  const r = sinPoly(s);
  return (q & 2) === 0 ? -r : r;
}

const PI_HI = f(3.1415927410125732422);
const PI_LO = f(-8.7422776573475857731e-8);
const withSignOf = (x: number, d: number): number => (d < 0 || (d === 0 && 1 / d < 0) ? -x : x);

/** torch.acos of a float32 value (Sleef_acosf16_u10). */
export function torchAcosf(xIn: number): number {
  const d = f(xIn);
  if (Number.isNaN(d)) return NaN;
  const ad = Math.abs(d);
  const o = ad < 0.5;
  const x2 = o ? mul(d, d) : mul(sub(1, ad), 0.5);
  let x: DF = o ? [ad, 0] : ad === 1 ? [0, 0] : dfsqrt(x2);
  if (ad === 1) x = [0, 0];
  let u = f(0.4197454825e-1);
  u = fma(u, x2, f(0.2424046025e-1));
  u = fma(u, x2, f(0.4547423869e-1));
  u = fma(u, x2, f(0.7495029271e-1));
  u = fma(u, x2, f(0.1666677296));
  u = mul(u, mul(x2, x[0]));
  let y: DF = o ? dfsub([f(PI_HI / 2), f(PI_LO / 2)], dfadd(withSignOf(x[0], d), withSignOf(u, d))) : dfscale(dfadd_df_f(x, u), 2);
  if (!o && d < 0) y = dfsub([PI_HI, PI_LO], y);
  const r = add(y[0], y[1]);
  return ad > 1 ? NaN : r;
}

/** 2^q for an integer q in the normal range (SLEEF's vpow2i). */
const pow2i = (q: number): number => fromBits((q + 0x7f) << 23);

const R_LN2f = f(Math.LOG2E);
const L2Uf = f(0.693145751953125);
const L2Lf = f(1.428606765330187045e-6);

/** torch's Vectorized<float>::exp (Sleef_expf16_u10: SLEEF's xexpf). */
export function torchExpf(xIn: number): number {
  const d = f(xIn);
  if (Number.isNaN(d)) return NaN;
  if (d < -104) return 0;
  if (d > 100) return Infinity;
  const q = rint(mul(d, R_LN2f));
  let s = fma(q, -L2Uf, d);
  s = fma(q, -L2Lf, s);
  let u = f(0.000198527617612853646278381);
  u = fma(u, s, f(0.00139304355252534151077271));
  u = fma(u, s, f(0.00833336077630519866943359));
  u = fma(u, s, f(0.0416664853692054748535156));
  u = fma(u, s, f(0.166666671633720397949219));
  u = fma(u, s, 0.5);
  u = add(1, fma(mul(s, s), u, s));
  const h = q >> 1;
  return mul(mul(u, pow2i(h)), pow2i(q - h));
}

/** AVX-512 getexp: ⌊log2 |x|⌋ of a finite nonzero float. */
function getexp(x: number): number {
  const b = bitsOf(x) & 0x7fffffff;
  const e = b >>> 23;
  if (e !== 0) return e - 127;
  return -127 - (Math.clz32(b) - 9); // subnormal: position of the leading fraction bit
}

/** AVX-512 getmant with interval [0.75, 1.5): the significand, halved when it is ≥ 1.5. */
function getmant(x: number): number {
  let b = bitsOf(x) & 0x7fffffff;
  if (b >>> 23 === 0) {
    const shift = Math.clz32(b) - 8;
    b = (b << shift) & 0x7fffff;
  } else b &= 0x7fffff;
  return fromBits(((b & 0x400000 ? 126 : 127) << 23) | b);
}

const dfdiv = (n: DF, d: DF): DF => {
  const t = f(1 / d[0]);
  const s = mul(n[0], t);
  const u = fma(t, n[0], -s);
  const v = fma(-d[1], t, fma(-d[0], t, 1));
  return [s, fma(s, v, fma(n[1], t, u))];
};
const dfmul_df_f = (x: DF, y: number): DF => {
  const s = mul(x[0], y);
  return [s, fma(x[1], y, fma(x[0], y, -s))];
};
const dfadd_df_df = (x: DF, y: DF): DF => {
  const s = add(x[0], y[0]);
  return [s, add(add(add(sub(x[0], s), y[0]), x[1]), y[1])];
};

/** torch's Vectorized<float>::log (Sleef_logf16_u10: SLEEF's xlogf_u1, AVX-512 path). */
export function torchLogf(xIn: number): number {
  const d = f(xIn);
  if (Number.isNaN(d) || d < 0) return NaN;
  if (d === 0) return -Infinity;
  if (d === Infinity) return Infinity;
  const e = getexp(mul(d, f(1 / 0.75)));
  const m = getmant(d);
  let s = dfmul_df_f([f(0.69314718246459960938), f(-1.904654323148236017e-9)], e);
  const x = dfdiv(dfadd2(-1, m), dfadd2(1, m));
  const x2 = mul(x[0], x[0]);
  let t = f(0.3027294874);
  t = fma(t, x2, f(0.3996108174));
  t = fma(t, x2, f(0.666669488));
  s = dfadd_df_df(s, dfscale(x, 2));
  s = dfadd_df_f(s, mul(mul(x2, x[0]), t));
  return add(s[0], s[1]);
}
