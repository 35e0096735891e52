/**
 * glibc's `expf` (2.28+, sysdeps/ieee754/flt-32/e_expf.c from ARM's optimized-routines), as the
 * x86-64 libm selects it on a CPU with FMA (`__expf_fma`): torch's reduced-float softmax ends a
 * row with it after its whole vectors. Replayed instruction for instruction from Debian 12's
 * libm.so.6 (glibc 2.36): k = round(x·32/ln2) by the 1.5·2⁵² shift, r = fma(x, 32/ln2, −k),
 * 2^(k/32) from a 32-entry table, a cubic in r evaluated with three double FMAs, one double
 * multiply, then rounded to float. The constants below are the bytes of that libm's tables.
 * Checked against the machine's expf (scripts/numerics/glibc-expf-dump.c, glibc-expf.test.ts).
 */
import { fma64 } from "./fma64.js";
import { f64Bits as bitsOf, f64FromBits as fromBits } from "./float-bits.js";

const INV_LN2_N = fromBits(0x40471547652b82fen); // 0x1.71547652b82fep5 = 32/ln2
const SHIFT = fromBits(0x4338000000000000n); // 0x1.8p52
const C0 = fromBits(0x3ebc6af84b912394n); // 0x1.c6af84b912394p-20
const C1 = fromBits(0x3f2ebfce50fac4f3n); // 0x1.ebfce50fac4f3p-13
const C2 = fromBits(0x3f962e42ff0c52d6n); // 0x1.62e42ff0c52d6p-6
/** asuint64(2^(i/32)) − (i << 47), as glibc's __exp2f_data.tab. */
const TAB = [
  0x3ff0000000000000n,
  0x3fefd9b0d3158574n,
  0x3fefb5586cf9890fn,
  0x3fef9301d0125b51n,
  0x3fef72b83c7d517bn,
  0x3fef54873168b9aan,
  0x3fef387a6e756238n,
  0x3fef1e9df51fdee1n,
  0x3fef06fe0a31b715n,
  0x3feef1a7373aa9cbn,
  0x3feedea64c123422n,
  0x3feece086061892dn,
  0x3feebfdad5362a27n,
  0x3feeb42b569d4f82n,
  0x3feeab07dd485429n,
  0x3feea47eb03a5585n,
  0x3feea09e667f3bcdn,
  0x3fee9f75e8ec5f74n,
  0x3feea11473eb0187n,
  0x3feea589994cce13n,
  0x3feeace5422aa0dbn,
  0x3feeb737b0cdc5e5n,
  0x3feec49182a3f090n,
  0x3feed503b23e255dn,
  0x3feee89f995ad3adn,
  0x3feeff76f2fb5e47n,
  0x3fef199bdd85529cn,
  0x3fef3720dcef9069n,
  0x3fef5818dcfba487n,
  0x3fef7c97337b9b5fn,
  0x3fefa4afa2a490dan,
  0x3fefd0765b6e4540n,
];
const OVERFLOW = 0x162e42e / 2 ** 18; // 0x1.62e42ep6f
const UNDERFLOW = -0x19fe368 / 2 ** 18; // -0x1.9fe368p6f
const MAY_UNDERFLOW = -0x19d1d9e / 2 ** 18; // -0x1.9d1d9ep6f
const MAY_UNDERFLOW_Y = 0x14 * 2 ** -79; // 0x1.4p-75f

/** glibc's expf(x) for a float x (result a float). */
export function glibcExpf(x: number): number {
  const xd = Math.fround(x);
  if (Number.isNaN(xd)) return xd;
  if (!(Math.abs(xd) < 88)) {
    // the top-12-bits test sends |x| ≥ 88 here: specials, overflow, underflow
    if (xd === -Infinity) return 0;
    if (xd === Infinity) return Infinity;
    if (xd > OVERFLOW) return Infinity;
    if (xd < UNDERFLOW) return 0; // 0x1p-95f squared
    if (xd < MAY_UNDERFLOW) return Math.fround(MAY_UNDERFLOW_Y * MAY_UNDERFLOW_Y);
  }
  const kdShifted = fma64(INV_LN2_N, xd, SHIFT);
  const ki = bitsOf(kdShifted);
  const kd = kdShifted - SHIFT;
  const r = fma64(INV_LN2_N, xd, -kd);
  const t = TAB[Number(ki & 31n)] + BigInt.asUintN(64, ki << 47n);
  const s = fromBits(t);
  const z = fma64(r, C0, C1);
  const r2 = r * r;
  let y = fma64(r, C2, 1);
  y = fma64(z, r2, y);
  return Math.fround(y * s);
}
