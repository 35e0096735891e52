/**
 * A seedable PRNG whose whole state is four uint32 words plus the spare normal deviate, so a
 * search checkpoint can store it as JSON and a resumed run continues the exact same stream.
 *
 * Generator: xoshiro128** (Blackman & Vigna), seeded through splitmix32 so nearby seeds give
 * unrelated streams. Uniforms take 53 bits from two outputs (full double resolution); normals
 * come from the Marsaglia polar method, which yields pairs: the second deviate is kept in the
 * state and returned by the next `normal()` call.
 */
import { ParamError } from "@mergeloom/engine/errors";

export interface RngState {
  /** xoshiro128** words, each an unsigned 32-bit integer. */
  s: [number, number, number, number];
  /** The cached second deviate of the last polar pair, or null. */
  spare: number | null;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new ParamError(`create rng seed ${seed}: seed must be a finite number`);
    // fold the high bits in so seeds beyond 2^32 still differ
    const lo = seed >>> 0;
    const hi = Math.floor(Math.abs(seed) / 0x100000000) >>> 0;
    let x = (lo ^ Math.imul(hi, 0x85ebca6b)) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      words.push((z ^ (z >>> 15)) >>> 0);
    }
    if ((words[0] | words[1] | words[2] | words[3]) === 0) words[0] = 1; // all-zero is a fixed point
    [this.a, this.b, this.c, this.d] = words;
  }

  /** The next raw unsigned 32-bit output. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A standard normal deviate (Marsaglia polar method). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    for (;;) {
      const u = 2 * this.next() - 1;
      const v = 2 * this.next() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt((-2 * Math.log(s)) / s);
        this.spare = v * f;
        return u * f;
      }
    }
  }

  state(): RngState {
    return { s: [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0], spare: this.spare };
  }

  static fromState(state: RngState): Rng {
    const ok =
      state !== null &&
      typeof state === "object" &&
      Array.isArray(state.s) &&
      state.s.length === 4 &&
      state.s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) &&
      state.s.some((w) => w !== 0) &&
      (state.spare === null || Number.isFinite(state.spare));
    if (!ok) {
      throw new ParamError("restore rng state: expected {s: four uint32 words, not all zero, spare: number | null}");
    }
    const rng = new Rng(0);
    [rng.a, rng.b, rng.c, rng.d] = state.s.map((w) => w | 0);
    rng.spare = state.spare;
    return rng;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
