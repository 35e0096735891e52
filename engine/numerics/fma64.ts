/**
 * fma(a, b, c) in double precision, rounded once, as x86's `vfmadd…pd` computes it. `fma64Exact`
 * does it with integers (BigInt, any finite operands); `fma64` is the fast form used by the replays:
 * Boldo & Melquiond's emulation (exact product by Veltkamp splitting, exact sum, the low parts
 * added with rounding to odd, one final rounding to nearest), exact while nothing over- or
 * underflows, and falls back to `fma64Exact` outside that range.
 */

import { f64Bits as bitsOf } from "./float-bits.js";

// scratch for the round-to-odd step, which edits the low word of a double in place
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/** x = m·2^e with integer m (exact; x finite). */
function parts(x: number): [bigint, number] {
  if (x === 0) return [0n, 0];
  const b = bitsOf(x);
  const exp = Number((b >> 52n) & 0x7ffn);
  let m = b & 0xfffffffffffffn;
  if (exp) m |= 1n << 52n;
  const e = (exp || 1) - 1075;
  return [b >> 63n ? -m : m, e];
}

/** The double nearest to m·2^e (ties to even), for results in the normal range. */
function roundToDouble(m: bigint, e: number): number {
  if (m === 0n) return 0;
  const neg = m < 0n;
  let a = neg ? -m : m;
  const len = a.toString(2).length;
  if (len > 53) {
    const s = len - 53;
    const rem = a & ((1n << BigInt(s)) - 1n);
    const half = 1n << BigInt(s - 1);
    a >>= BigInt(s);
    if (rem > half || (rem === half && (a & 1n) === 1n)) a += 1n;
    e += s;
  }
  const v = Number(a) * 2 ** e;
  return neg ? -v : v;
}

/** fma(a, b, c) in double: a·b + c rounded once (integer arithmetic; finite normal results). */
export function fma64Exact(a: number, b: number, c: number): number {
  const [ma, ea] = parts(a);
  const [mb, eb] = parts(b);
  const [mc, ec] = parts(c);
  let mp = ma * mb;
  let ep = ea + eb;
  if (mp === 0n) return a * b + c;
  let mcc = mc;
  if (mc !== 0n) {
    if (ec < ep) {
      mp <<= BigInt(ep - ec);
      ep = ec;
    } else mcc <<= BigInt(ec - ep);
  }
  return roundToDouble(mp + mcc, ep);
}

const SPLIT = 134217729; // 2^27 + 1
const LO = 2 ** -900;
const HI = 2 ** 900;

/** fma(a, b, c) in double: a·b + c rounded once. */
export function fma64(a: number, b: number, c: number): number {
  const uh = a * b;
  const ah = Math.abs(uh);
  const ac = Math.abs(c);
  if (!(ah > LO && ah < HI) || !((ac > LO && ac < HI) || c === 0) || !(Math.abs(a) < HI && Math.abs(b) < HI)) {
    if (a === 0 || b === 0 || !Number.isFinite(uh) || !Number.isFinite(c)) return uh + c;
    return fma64Exact(a, b, c);
  }
  // exact product uh + ul (Dekker / Veltkamp)
  let t = SPLIT * a;
  const a1 = t - (t - a);
  const a2 = a - a1;
  t = SPLIT * b;
  const b1 = t - (t - b);
  const b2 = b - b1;
  const ul = a2 * b2 - (uh - a1 * b1 - a2 * b1 - a1 * b2);
  // exact sum th + tl = c + uh (Knuth's TwoSum)
  const th = c + uh;
  const bv = th - c;
  const tl = c - (th - bv) + (uh - bv);
  // v = tl + ul rounded to odd
  const v = tl + ul;
  const vv = v - tl;
  const err = tl - (v - vv) + (ul - vv);
  let vo = v;
  if (err !== 0) {
    f64[0] = v;
    if ((u32[0] & 1) === 0) {
      if (v > 0 === err > 0)
        u32[0] += 1; // away from zero: the low word is even, no carry
      else if (u32[0] === 0) {
        u32[0] = 0xffffffff;
        u32[1] -= 1;
      } else u32[0] -= 1;
      vo = f64[0];
    }
  }
  return th + vo;
}

/**
 * fmaf(a, b, c) for float32 operands, rounded once to float32: a·b is exact in double, the sum is
 * rounded to odd in double (53 ≥ 24 + 2 bits), then to float32 — one rounding of a·b + c.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  if (!Number.isFinite(s)) return Math.fround(s);
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return Math.fround(s);
  f64[0] = s;
  if ((u32[0] & 1) === 0) {
    if (s > 0 === err > 0) u32[0] += 1;
    else if (u32[0] === 0) {
      u32[0] = 0xffffffff;
      u32[1] -= 1;
    } else u32[0] -= 1;
  }
  return Math.fround(f64[0]);
}
