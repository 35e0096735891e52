/**
 * NaN/±inf detection on stored bytes (any float dtype), for the merge's output check: an output
 * tensor holding a non-finite value that no input held means the parameters overflowed.
 * Bit tests on the encoded values: what the user gets is checked, including fp32 values that
 * overflow only when rounded to bf16 or fp16.
 */
import type { DType } from "@mergeloom/proto/dtype";

/** True when any element of `bytes` (little-endian `dtype`) is NaN or ±inf; integer dtypes never are. */
export function hasNonFinite(bytes: Uint8Array, dtype: DType): boolean {
  switch (dtype) {
    case "BF16":
      return anyMasked(bytes, 0x7f80, 0x7f807f80);
    case "F16":
      return anyMasked(bytes, 0x7c00, 0x7c007c00);
    case "F32": {
      const n = bytes.byteLength >>> 2;
      const u = words(bytes, n);
      for (let i = 0; i < n; i++) if ((u[i] & 0x7f800000) === 0x7f800000) return true;
      return false;
    }
    case "F64": {
      const n = bytes.byteLength >>> 2;
      const u = words(bytes, n);
      for (let i = 1; i < n; i += 2) if ((u[i] & 0x7ff00000) === 0x7ff00000) return true;
      return false;
    }
    case "F8_E5M2":
      for (let i = 0; i < bytes.byteLength; i++) if ((bytes[i] & 0x7c) === 0x7c) return true;
      return false;
    case "F8_E4M3":
      for (let i = 0; i < bytes.byteLength; i++) if ((bytes[i] & 0x7f) === 0x7f) return true;
      return false;
    default:
      return false;
  }
}

/** 16-bit values with exponent mask `m` (all bits set = non-finite), two per 32-bit word. */
function anyMasked(bytes: Uint8Array, m: number, mm: number): boolean {
  const n = bytes.byteLength >>> 2;
  const u = words(bytes, n);
  const hi = (mm & 0xffff0000) >>> 0;
  for (let i = 0; i < n; i++) {
    const w = u[i] & mm;
    if ((w & 0xffff) === m || (w & 0xffff0000) >>> 0 === hi) return true;
  }
  if (bytes.byteLength & 2) {
    const last = bytes[bytes.byteLength - 2] | (bytes[bytes.byteLength - 1] << 8);
    if ((last & m) === m) return true;
  }
  return false;
}

function words(bytes: Uint8Array, n: number): Uint32Array {
  if (bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  return new Uint32Array(bytes.slice(0, n * 4).buffer, 0, n);
}
