/**
 * VRSQRT14PS (AVX-512's reciprocal square root estimate, relative error < 2⁻¹⁴), bit for bit: SVML's
 * float32 arccos starts from it, and its next step keeps the estimate's rounding, so numpy's
 * np.arccos bits depend on it. The result depends only on the exponent's parity and the top 15
 * fraction bits (checked over all of [0.5, 2) by scripts/numerics/rsqrt14-dump.c) and has 16
 * fraction bits; the table of those results, measured on the CPU, ships as 4-bit corrections to
 * round((1/√mid)·2^(16−E)).
 */
import { RSQRT14_DELTAS_B64 } from "./rsqrt14-table.js";

let deltas: Uint8Array | undefined;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** round((1/√mid)·2^(16−E)) for parity p (0: [0.5, 1), E = 0; 1: [1, 2), E = −1) and prefix i. */
export function rsqrt14Predicted(p: number, i: number): number {
  const mid = (1 + (i + 0.5) / 32768) * (p === 0 ? 0.5 : 1);
  return Math.round((1 / Math.sqrt(mid)) * 2 ** (p === 0 ? 16 : 17));
}

/** VRSQRT14PS of a positive normal float32 y. */
export function rsqrt14(y: number): number {
  f32[0] = y;
  const b = u32[0];
  const e = b >>> 23;
  const frac = b & 0x7fffff;
  const p = e & 1 ? 1 : 0; // e = 127 is [1, 2): parity 1; e = 126 is [0.5, 1): parity 0
  const scale = 2 ** ((126 + p - e) / 2); // rsqrt(m·2^(e−127)) = rsqrt(m·2^(p−1))·2^((126+p−e)/2)
  if (frac === 0) return Math.fround((p === 0 ? 0x16a05 / 0x10000 : 1) * scale); // hardware: √2 → 0x1.6a05p0
  deltas ??= Buffer.from(RSQRT14_DELTAS_B64, "base64");
  const i = frac >>> 8;
  const j = p * 32768 + i;
  const d = ((deltas[j >> 1] >> ((j & 1) * 4)) & 15) - 7;
  return Math.fround(((rsqrt14Predicted(p, i) + d) / 2 ** (p === 0 ? 16 : 17)) * scale);
}
