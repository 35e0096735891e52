/**
 * What the streamed generalized task arithmetic (gta-stream.ts) does per input: one selector per
 * sparsification kind, holding that input's state across the stats steps and masking δ in apply.
 *
 *   kind (mergekit name)          methods                  steps it takes part in
 *   top-k (magnitude)             ties                     norms-and-buckets, cut-keys, kept-norm*
 *   breadcrumbs (outliers)        breadcrumbs(_ties)       norms-and-buckets, cut-keys, kept-norm*
 *   DARE (random)                 dare_linear, dare_ties   norms-and-buckets*
 *   DELLA (della_magprune)        della, della_linear      norms-and-buckets*
 *   keep all / drop all           density ≥ 1, empty kept range, della density ≤ 0: none
 *   (* only when the tensor rescales)
 *
 * The ranked kinds need the cut keys before they can mask, so three reads: the first puts each cut
 * in a high-16-bit bucket, the second finds the exact key, the third sums ‖δ⊙mask‖₁ for the
 * rescale. The random kinds draw their mask per element, so one read gives both norms.
 */
import { ParamError } from "../errors/index.js";
import { kernelArena } from "../kernels/wasm-kernels.js";
import type { StreamChunk } from "./define-merge-method.js";
import { KeyCuts, type KeySelection } from "./key-cuts.js";
import { KeyRangeMask, TopKMask, type KeyMask } from "./key-masks.js";
import {
  checkDellaDensity,
  checkMagnitudeDensity,
  checkRandomDensity,
  keepCount,
  l1,
  l1Ratio,
  maskRandom,
  outlierRange,
  sparsifyDellaMagprune,
  type SparsificationMethod,
} from "./sparsify.js";

/**
 * The stats steps, in the order they run; each reads every chunk once and recomputes δ:
 *  - "norms-and-buckets": ‖δ‖₁ of every input that rescales and, as a random mask needs no
 *    ranking, its ‖δ⊙mask‖₁; for a ranked kind the histogram of the high 16 bits of the |δ| keys,
 *    which puts each cut in one bucket;
 *  - "cut-keys": the low-16-bit histograms of those buckets → each cut's key, how many keys lie
 *    below it and how many equal it, as `selectKey` finds on the whole tensor;
 *  - "kept-norm": ‖δ⊙mask‖₁ of a ranked kind that rescales, now that its mask is known.
 * L1 norms are float64 sums in flat order, so they equal the whole-tensor sums bit for bit.
 */
export const STEPS = ["norms-and-buckets", "cut-keys", "kept-norm"] as const;
export type Step = (typeof STEPS)[number];

/** One input's sparsification in the stream, fed δ of fp32 chunks. */
export interface Selector {
  /** The steps this input takes part in, in STEPS order. */
  readonly steps: readonly Step[];
  /** The L1 rescale factor ‖δ‖₁/‖δ⊙mask‖₁ (fp32) once the steps ended; 1 without rescale. */
  readonly ratio: number;
  /** One chunk of a step: δ in fp32 (the selector may overwrite it). */
  stats(step: Step, d: Float32Array, chunk: StreamChunk): void;
  /** After the step's last chunk. */
  endStep(step: Step): void;
  /** Zeroes what the mask drops in the apply pass's next chunk of δ (no rescale). */
  mask(d: Float32Array, chunk: StreamChunk): void;
}

/** A selector that also computes from raw bf16 chunks with the kernels (every kind but DELLA). */
export interface RawSelector extends Selector {
  /**
   * One chunk of a step from bf16 bits: the input's at arena offset x and the base's at `base`, len
   * elements; `block` is an arena scratch of BLOCK fp32 values.
   */
  statsBF16(step: Step, x: number, base: number, len: number, chunk: StreamChunk, block: number): void;
  /** `mask` on n fp32 values of δ at arena offset d, the first at flat index `at`. */
  maskBlock(d: number, n: number, at: number, chunk: StreamChunk): void;
}

export function isRaw(s: Selector): s is RawSelector {
  return "statsBF16" in s;
}

/** Elements per block of the raw bf16 kernels: every block buffer stays in L1/L2. */
export const BLOCK = 4096;

/** What a selector is built from: one non-base input of one tensor, with density < 1. */
export interface SelectorInput {
  /** Index of the input in the tensor's inputs (its random stream). */
  index: number;
  density: number;
  /** breadcrumbs: share of the largest entries to drop. */
  gamma: number;
  /** DELLA: half-width of the keep-probability range. */
  epsilon: number;
  numel: number;
  shape: readonly number[];
  rescale: boolean;
  /** Names tensor and model in error messages. */
  subject: string;
}

/** Builds one input's selector; undefined when the tensor must be merged whole. */
export type SelectorFactory = (s: SelectorInput) => Selector | undefined;

/** The selector factory of a sparsification method (chosen once per variant); none keeps every input whole. */
export function selectorFactory(method: SparsificationMethod | null): SelectorFactory {
  if (method === null) return () => KEEP_ALL;
  const make = FACTORIES[method];
  return (s) => (s.density >= 1 ? KEEP_ALL : make(s));
}

const FACTORIES: Record<SparsificationMethod, SelectorFactory> = {
  magnitude(s) {
    checkMagnitudeDensity(s.density, s.numel, s.subject);
    const k = keepCount(s.density, s.numel);
    return k >= s.numel ? KEEP_ALL : new TopKSelector(k, s.numel, s.rescale);
  },
  magnitude_outliers(s) {
    const { start, stop } = outlierRange(s.density, s.gamma, s.numel);
    return stop <= start ? DROP_ALL : new BreadcrumbsSelector(start, stop, s.rescale);
  },
  random(s) {
    checkRandomDensity(s.density, s.subject);
    return new DareSelector(s.index, s.density, s.rescale);
  },
  della_magprune(s) {
    // Ranks run along dim 1 within each dim-0 row, and chunks are whole dim-0 rows, so each chunk
    // is masked exactly as in the whole tensor; a 1-D tensor is one ranked row: merged whole.
    if (s.shape.length < 2) return undefined;
    if (s.density <= 0) return DROP_ALL;
    checkDellaDensity(s.density, s.epsilon, s.subject);
    return new DellaSelector(s.index, s.density, s.epsilon, s.rescale);
  },
};

/** No sparsification: δ as it is. */
class KeepAll implements RawSelector {
  readonly steps = [];
  readonly ratio = 1;
  stats(): void {}
  statsBF16(): void {}
  endStep(): void {}
  mask(): void {}
  maskBlock(): void {}
}

/** Everything dropped: δ = 0. */
class DropAll implements RawSelector {
  readonly steps = [];
  readonly ratio = 1;
  stats(): void {}
  statsBF16(): void {}
  endStep(): void {}
  mask(d: Float32Array): void {
    d.fill(0);
  }
  maskBlock(d: number, n: number): void {
    kernelArena().k.zeroF32(d, n);
  }
}

/** Neither holds state, so every input shares one. */
const KEEP_ALL = new KeepAll();
const DROP_ALL = new DropAll();

/**
 * The magnitude-ranked kinds: their cut keys are radix-selected over the first two steps (the
 * whole tensor's `selectKey`, fed chunk by chunk), then the kind's mask keeps entries by key.
 */
abstract class RankedSelector implements RawSelector {
  readonly steps: readonly Step[];
  ratio = 1;
  private readonly cuts: KeyCuts;
  private keyMask?: KeyMask;
  private before = 0;
  private after = 0;
  /** Arena offsets (raw bf16 path): the high histogram, one low histogram per cut (shared when two cuts share a bucket). */
  private hiAt?: number;
  private loAt: number[] = [];

  constructor(
    positions: readonly number[],
    private readonly rescale: boolean,
  ) {
    this.cuts = new KeyCuts(positions);
    this.steps = rescale ? ["norms-and-buckets", "cut-keys", "kept-norm"] : ["norms-and-buckets", "cut-keys"];
  }

  /** The kind's mask from the cut keys (one per position), with fresh tie counters. */
  protected abstract maskOf(keys: readonly KeySelection[]): KeyMask;

  stats(step: Step, d: Float32Array): void {
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    switch (step) {
      case "norms-and-buckets":
        if (this.rescale) this.before = l1(d, this.before);
        this.cuts.countHigh(bits);
        return;
      case "cut-keys":
        this.cuts.countLow(bits);
        return;
      case "kept-norm":
        this.keyMask!.apply(d);
        this.after = l1(d, this.after);
    }
  }

  statsBF16(step: Step, x: number, base: number, len: number, _chunk: StreamChunk, block: number): void {
    const a = kernelArena();
    const k = a.k;
    switch (step) {
      // the histograms take the whole chunk at once: δ is computed inside the kernels, never stored
      case "norms-and-buckets": {
        const h = (this.hiAt ??= zeroed(a.alloc(HIST_BYTES), HIST_BYTES));
        if (this.rescale) this.before = k.histHiL1BF16(h, x, base, len, this.before);
        else k.histHiBF16(h, x, base, len);
        return;
      }
      case "cut-keys": {
        const buckets = this.cuts.buckets;
        if (this.loAt.length === 0) {
          for (const [j, hi] of buckets.entries()) {
            const first = buckets.indexOf(hi);
            this.loAt.push(first < j ? this.loAt[first] : zeroed(a.alloc(HIST_BYTES), HIST_BYTES));
          }
        }
        const last = buckets.length - 1;
        k.histLoBF16(this.loAt[0], this.loAt[last], buckets[0], buckets[last], x, base, len);
        return;
      }
      // the mask runs block by block, its tie counters continuing in flat order
      case "kept-norm":
        for (let s = 0; s < len; s += BLOCK) {
          const n = Math.min(BLOCK, len - s);
          k.deltaBF16(block, x + 2 * s, base + 2 * s, n);
          this.maskBlock(block, n);
          this.after = k.l1(block, n, this.after);
        }
    }
  }

  endStep(step: Step): void {
    // on the raw path the kernels counted in the arena: copied out, as a later alloc may detach views
    const counted = (at: number) => Uint32Array.from(kernelArena().u32(at, 65536));
    switch (step) {
      case "norms-and-buckets":
        this.cuts.endHigh(this.hiAt === undefined ? undefined : counted(this.hiAt));
        return;
      case "cut-keys":
        this.cuts.endLow(this.loAt.length ? this.loAt.map(counted) : undefined);
        this.keyMask = this.maskOf(this.cuts.keys);
        return;
      case "kept-norm":
        this.ratio = l1Ratio(this.before, this.after);
        this.keyMask = this.maskOf(this.cuts.keys); // apply masks from the first element again
    }
  }

  mask(d: Float32Array): void {
    this.keyMask!.apply(d);
  }

  maskBlock(d: number, n: number): void {
    this.keyMask!.applyInArena(d, n);
  }
}

/** magnitude (TIES): keeps the k = int(density·n) largest |δ| of the whole tensor. */
class TopKSelector extends RankedSelector {
  constructor(
    private readonly k: number,
    private readonly n: number,
    rescale: boolean,
  ) {
    super([n - k], rescale); // the k-th largest key is the (n−k)-th smallest
  }
  protected maskOf(keys: readonly KeySelection[]): KeyMask {
    return new TopKMask(keys[0], this.k, this.n);
  }
}

/** magnitude_outliers (breadcrumbs): keeps ascending positions [start, stop) of |δ|. */
class BreadcrumbsSelector extends RankedSelector {
  constructor(
    private readonly start: number,
    private readonly stop: number,
    rescale: boolean,
  ) {
    super([start, stop - 1], rescale);
  }
  protected maskOf(keys: readonly KeySelection[]): KeyMask {
    return new KeyRangeMask(keys[0], keys[1], this.start, this.stop);
  }
}

/**
 * The randomly drawn kinds: element j's draw is the j-th of the input's stream whatever the
 * chunking, so the mask, and with it both norms, is known in the first read.
 */
abstract class DrawnSelector implements Selector {
  readonly steps: readonly Step[];
  ratio = 1;
  protected before = 0;
  protected after = 0;

  constructor(
    protected readonly index: number,
    protected readonly density: number,
    rescale: boolean,
  ) {
    this.steps = rescale ? ["norms-and-buckets"] : [];
  }

  abstract mask(d: Float32Array, chunk: StreamChunk): void;

  stats(_step: Step, d: Float32Array, chunk: StreamChunk): void {
    this.before = l1(d, this.before);
    this.mask(d, chunk);
    this.after = l1(d, this.after);
  }

  endStep(): void {
    this.ratio = l1Ratio(this.before, this.after);
  }
}

/** random (DARE): keeps each element with probability density. */
class DareSelector extends DrawnSelector implements RawSelector {
  /** Arena offset of the kernel's [‖δ‖₁, ‖δ⊙mask‖₁] (float64), raw bf16 path. */
  private sumsAt?: number;

  mask(d: Float32Array, chunk: StreamChunk): void {
    maskRandom(d, this.density, chunk.ctx.random(this.index));
  }

  statsBF16(_step: Step, x: number, base: number, len: number, chunk: StreamChunk): void {
    const a = kernelArena();
    const sums = (this.sumsAt ??= zeroed(a.alloc(16), 16));
    const [k0, k1, k2] = keyOf(chunk, this.index);
    a.k.randomL1BF16(x, base, len, k0, k1, Math.imul(k2, 0x9e3779b9), randomThreshold(this.density), chunk.start, sums);
  }

  override endStep(): void {
    if (this.sumsAt !== undefined) [this.before, this.after] = kernelArena().f64(this.sumsAt, 2);
    super.endStep();
  }

  maskBlock(d: number, n: number, at: number, chunk: StreamChunk): void {
    const [k0, k1, k2] = keyOf(chunk, this.index);
    kernelArena().k.maskRandom(d, n, k0, k1, Math.imul(k2, 0x9e3779b9), randomThreshold(this.density), at);
  }
}

/** della_magprune: per row, keeps element with probability density − ε + 2ε·rank/(len − 1); fp32 chunks only. */
class DellaSelector extends DrawnSelector {
  constructor(
    index: number,
    density: number,
    private readonly epsilon: number,
    rescale: boolean,
  ) {
    super(index, density, rescale);
  }

  mask(d: Float32Array, chunk: StreamChunk): void {
    sparsifyDellaMagprune(d, chunk.ctx.shape, this.density, this.epsilon, chunk.ctx.random(this.index), false);
  }
}

const HIST_BYTES = 65536 * 4;

/** The key of input i's random stream (from the chunk, or derived from its generator's draws). */
function keyOf(chunk: StreamChunk, i: number): readonly [number, number, number] {
  if (!chunk.randomKey) throw new ParamError(`${chunk.ctx.tensorName}: a streamed random mask needs the chunk's random keys`);
  return chunk.randomKey(i);
}

/** DARE keeps element i when its draw v/2^24 < density ⟺ v < ceil(density·2^24) for the integer v. */
function randomThreshold(density: number): number {
  return Math.min(Math.ceil(density * 16777216), 16777216);
}

/** Zero-fills `bytes` bytes of the arena at p and returns p. */
function zeroed(p: number, bytes: number): number {
  kernelArena().u8(p, bytes).fill(0);
  return p;
}
