/**
 * Bit patterns of float32 and float64 values, for the replays that build constants from a
 * library's bytes or flip sign bits as the machine code does. One scratch buffer per width: the
 * replays are synchronous, so no call can interleave with another.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);
const w32 = new Uint32Array(f64.buffer);

/** The 32 bits of float32(x), as an unsigned integer. */
export const f32Bits = (x: number): number => ((f32[0] = x), u32[0]);
/** The float32 value of 32 bits. */
export const f32FromBits = (b: number): number => ((u32[0] = b >>> 0), f32[0]);
/** The 64 bits of a double. */
export const f64Bits = (x: number): bigint => ((f64[0] = x), u64[0]);
/** The double of 64 bits (taken modulo 2⁶⁴). */
export const f64FromBits = (b: bigint): number => ((u64[0] = BigInt.asUintN(64, b)), f64[0]);
/** The double whose high and low 32-bit words are `hi` and `lo`. */
export const f64FromWords = (hi: number, lo: number): number => ((w32[1] = hi >>> 0), (w32[0] = lo >>> 0), f64[0]);
