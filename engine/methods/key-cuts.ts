/**
 * Radix select over |x| keys: float bits with the sign bit cleared, a uint32 that orders like |x|
 * (NaN above +inf). The key at a position of the ascending order is found in two counting reads,
 * over the high 16 bits and then over the low 16 bits inside the high bucket that holds the
 * position — O(n), no sort, no key array. The reads may be fed in chunks, so the whole-tensor
 * sparsifiers and the streamed merges run the same selection.
 */

export interface KeySelection {
  /** The key at position r of the ascending order. */
  key: number;
  /** How many keys are strictly below it. */
  below: number;
  /** How many keys equal it. */
  equal: number;
}

const BUCKETS = 65536;

/**
 * The selection of one or two positions at once (a range's two ends, equal or not, share each
 * read). Call `countHigh` for every chunk, `endHigh`, `countLow` for every chunk, `endLow`; then
 * `keys` holds one selection per position. Where a kernel counted in its own memory,
 * `endHigh`/`endLow` take its histograms instead.
 */
export class KeyCuts {
  /** The high 16 bits of each position's key, once `endHigh` ran. */
  readonly buckets: number[] = [];
  /** Each position's key, once `endLow` ran. */
  readonly keys: KeySelection[] = [];
  private high?: Uint32Array;
  private readonly belowBucket: number[] = [];
  /** One low histogram per position; positions in the same bucket share it. */
  private lows: Uint32Array[] = [];

  constructor(readonly positions: readonly number[]) {}

  /** First read: the histogram of the keys' high 16 bits. */
  countHigh(bits: Uint32Array): void {
    const h = (this.high ??= new Uint32Array(BUCKETS));
    for (let j = 0; j < bits.length; j++) h[(bits[j] & 0x7fffffff) >>> 16]++;
  }

  /** Puts each position in its high bucket (from `counted` when a kernel did the counting). */
  endHigh(counted = this.high): void {
    if (!counted) return;
    for (const r of this.positions) {
      const { bucket, below } = bucketAt(counted, r);
      const first = this.buckets.indexOf(bucket);
      this.buckets.push(bucket);
      this.belowBucket.push(below);
      this.lows.push(first >= 0 ? this.lows[first] : new Uint32Array(BUCKETS));
    }
    this.high = undefined;
  }

  /** Second read: the low 16 bits of the keys in the first and the last position's bucket. */
  countLow(bits: Uint32Array): void {
    const last = this.buckets.length - 1;
    const hiA = this.buckets[0];
    const hiB = this.buckets[last];
    const hA = this.lows[0];
    const hB = this.lows[last];
    for (let j = 0; j < bits.length; j++) {
      const b = bits[j] & 0x7fffffff;
      const hi = b >>> 16;
      if (hi === hiA) hA[b & 0xffff]++;
      else if (hi === hiB) hB[b & 0xffff]++;
    }
  }

  /** Finds each position's key (from `counted`, one histogram per position, when a kernel counted). */
  endLow(counted: readonly Uint32Array[] = this.lows): void {
    this.positions.forEach((r, j) => {
      const h = counted[j];
      const { bucket: lo, below } = bucketAt(h, r - this.belowBucket[j]);
      this.keys.push({ key: ((this.buckets[j] << 16) | lo) >>> 0, below: this.belowBucket[j] + below, equal: h[lo] });
    });
    this.lows = [];
  }
}

/** The bucket of a histogram that holds position r of the ascending order, and the count below it. */
function bucketAt(hist: Uint32Array, r: number): { bucket: number; below: number } {
  let below = 0;
  let bucket = 0;
  while (below + hist[bucket] <= r) below += hist[bucket++];
  return { bucket, below };
}

/** The keys at `positions` (each in [0, n)) of the ascending order of one whole array of keys. */
export function selectKeys(bits: Uint32Array, positions: readonly number[]): KeySelection[] {
  const n = bits.length;
  for (const r of positions) if (!(r >= 0 && r < n)) throw new RangeError(`selectKey: position ${r} outside [0, ${n})`);
  const cuts = new KeyCuts(positions);
  cuts.countHigh(bits);
  cuts.endHigh();
  cuts.countLow(bits);
  cuts.endLow();
  return cuts.keys;
}

/** The key at 0-based position `r` of the ascending order of the |x| keys `bits`. */
export function selectKey(bits: Uint32Array, r: number): KeySelection {
  return selectKeys(bits, [r])[0];
}
