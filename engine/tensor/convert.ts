/**
 * dtype conversion between stored bytes and the fp32 that every kernel computes in.
 * bf16→f32 is exact (a 16-bit shift); f32→bf16 and f32→f16 round to nearest even, as torch does.
 */
import type { DType } from "@mergeloom/proto/dtype";
import { DTYPE_BYTES } from "@mergeloom/proto/dtype";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Decodes `bytes` (little-endian `dtype`) into fp32. `out` is reused when it is large enough. */
export function decodeToF32(bytes: Uint8Array, dtype: DType, out?: Float32Array): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const dst = out && out.length >= n ? out.subarray(0, n) : new Float32Array(n);
  switch (dtype) {
    case "F32": {
      if (bytes.byteOffset % 4 === 0) dst.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
      else new Uint8Array(dst.buffer, dst.byteOffset, n * 4).set(bytes);
      return dst;
    }
    case "BF16": {
      const src = aligned16(bytes, n);
      const d32 = new Uint32Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) d32[i] = src[i] << 16;
      return dst;
    }
    case "F16": {
      const src = aligned16(bytes, n);
      for (let i = 0; i < n; i++) dst[i] = f16BitsToF32(src[i]);
      return dst;
    }
    case "F64": {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) dst[i] = dv.getFloat64(i * 8, true);
      return dst;
    }
    default:
      throw new Error(`decode ${dtype}: not a floating-point dtype; only F32, F16, BF16 and F64 tensors can be merged`);
  }
}

function aligned16(bytes: Uint8Array, n: number): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  return new Uint16Array(bytes.slice().buffer, 0, n);
}

/** Encodes fp32 into `dtype` bytes with round-to-nearest-even. `out` is reused when large enough. */
export function encodeFromF32(src: Float32Array, dtype: DType, out?: Uint8Array): Uint8Array {
  const n = src.length;
  const bytes = n * DTYPE_BYTES[dtype];
  const dst = out && out.byteLength >= bytes && out.byteOffset % 4 === 0 ? out.subarray(0, bytes) : new Uint8Array(bytes);
  switch (dtype) {
    case "F32":
      new Float32Array(dst.buffer, dst.byteOffset, n).set(src);
      return dst;
    case "BF16": {
      const s32 = new Uint32Array(src.buffer, src.byteOffset, n);
      const d16 = new Uint16Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const b = s32[i];
        // NaN keeps its sign and becomes a quiet NaN, like torch; everything else rounds to nearest even.
        d16[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x0040 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return dst;
    }
    case "F16": {
      const d16 = new Uint16Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) d16[i] = f32ToF16Bits(src[i]);
      return dst;
    }
    case "F64": {
      const dv = new DataView(dst.buffer, dst.byteOffset, bytes);
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, src[i], true);
      return dst;
    }
    default:
      throw new Error(`encode ${dtype}: not a floating-point dtype`);
  }
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** IEEE half from fp32, round to nearest even, with subnormals, overflow to inf and NaN kept. */
export function f32ToF16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  const rem = mant & 0x1fff;
  let r = (e << 10) | (mant >>> 13);
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  e = r; // carries into the exponent naturally, up to inf
  return sign | e;
}

/** Rounds fp32 values to the nearest bf16 in place (for emulating bf16 storage in memory). */
export function roundToBF16InPlace(a: Float32Array): void {
  const s32 = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < s32.length; i++) {
    const b = s32[i];
    s32[i] = (b & 0x7fffffff) > 0x7f800000 ? (b | 0x00400000) & 0xffff0000 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
}
