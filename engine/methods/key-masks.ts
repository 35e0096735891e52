/**
 * The masks of the magnitude sparsifiers, from the cut keys `KeyCuts` selects: they zero the
 * dropped entries of δ in flat order, carrying their tie counters from one call to the next, so a
 * tensor masked whole or chunk by chunk (or block by block in the kernel arena) loses the same
 * entries. Equal |δ| at a cut are decided by flat index, as sparsify.ts describes.
 */
import { kernelArena } from "../kernels/wasm-kernels.js";
import type { KeySelection } from "./key-cuts.js";

export interface KeyMask {
  /** Zeroes the dropped entries of the next run of δ in flat order. */
  apply(d: Float32Array): void;
  /** The same on n fp32 values at kernel-arena offset d, with the SIMD kernels. */
  applyInArena(d: number, n: number): void;
}

/** magnitude: keeps the k largest of n keys — those above the cut, and the first ties at it. */
export class TopKMask implements KeyMask {
  private readonly key: number;
  /** Entries equal to the cut key still to keep. */
  private tiesLeft: number;

  /** `cut` is the key at ascending position n − k. */
  constructor(cut: KeySelection, k: number, n: number) {
    this.key = cut.key;
    this.tiesLeft = k - (n - cut.below - cut.equal);
  }

  apply(d: Float32Array): void {
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    const len = d.length;
    const t = this.key;
    let tiesLeft = this.tiesLeft;
    for (let i = 0; i < len; i++) {
      const raw = bits[i];
      const b = raw & 0x7fffffff;
      if (b === t) {
        // rare: the cut key itself, kept for the first tiesLeft occurrences in flat order
        if (tiesLeft > 0) tiesLeft--;
        else bits[i] = 0;
        continue;
      }
      bits[i] = raw & ((t - b) >> 31); // b > t, branch-free (the comparison is a coin flip; b, t < 2^31)
    }
    this.tiesLeft = tiesLeft;
  }

  applyInArena(d: number, n: number): void {
    this.tiesLeft = kernelArena().k.maskMagnitude(d, n, this.key, this.tiesLeft);
  }
}

/**
 * magnitude_outliers: keeps ascending positions [start, stop). Of the keys equal to the lower cut
 * the first `skipLow` in flat order are dropped; of those equal to the upper cut the first
 * `keepHigh` are kept.
 */
export class KeyRangeMask implements KeyMask {
  private readonly lk: number;
  private readonly hk: number;
  private readonly skipLow: number;
  private readonly keepHigh: number;
  /** Keys equal to lk and to hk seen so far. */
  private tl = 0;
  private th = 0;
  /** Arena offset of the kernel's [tl, th] (i32), allocated on first use. */
  private stateAt?: number;

  /** `low` and `high` are the keys at ascending positions start and stop − 1. */
  constructor(low: KeySelection, high: KeySelection, start: number, stop: number) {
    this.lk = low.key;
    this.hk = high.key;
    this.skipLow = start - low.below; // ties at lk that sit before position `start`
    this.keepHigh = stop - high.below; // ties at hk that sit before position `stop`
  }

  apply(d: Float32Array): void {
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    const len = d.length;
    const { lk, hk, skipLow, keepHigh } = this;
    let tl = this.tl;
    let th = this.th;
    for (let i = 0; i < len; i++) {
      const raw = bits[i];
      const b = raw & 0x7fffffff;
      let keep = (((b - lk) | (hk - b)) >>> 31) ^ 1; // lk ≤ b ≤ hk, branch-free (all < 2^31)
      if (b === lk) {
        if (tl < skipLow) keep = 0;
        tl++;
      }
      if (b === hk) {
        if (th >= keepHigh) keep = 0;
        th++;
      }
      bits[i] = raw & -keep;
    }
    this.tl = tl;
    this.th = th;
  }

  applyInArena(d: number, n: number): void {
    const a = kernelArena();
    const st = (this.stateAt ??= a.alloc(8));
    a.u32(st, 2).set([this.tl, this.th]);
    a.k.maskOutliers(d, n, this.lk, this.hk, this.skipLow, this.keepHigh, st);
    [this.tl, this.th] = a.u32(st, 2);
  }
}
