/**
 * mergekit's task-vector sparsifiers (mergekit/sparsify.py), in place on an fp32 task vector.
 *
 * Every sparsifier returns its input untouched when `density >= 1` (no rescale, gamma ignored),
 * zeroes the dropped entries, and, when `rescale` is set, multiplies the survivors by one scalar per
 * tensor, ‖δ‖₁ / ‖δ⊙mask‖₁ (skipped when either norm is < 1e-7), as mergekit's L1 rescale does.
 *
 * Ranking ties. mergekit ranks |δ| with `torch.argsort`/`torch.sort` (stable=False). On CPU that is
 * `std::sort`, whose order among equal keys is unspecified in general but is insertion-sort order
 * (stable) for the small slices it finishes with. We fix the rule to *stable by index*:
 *  - magnitude (descending): among equal |δ| at the cut, the lower flat index is kept;
 *  - magnitude_outliers (ascending order, keep sorted[n_bot : n−n_top]): among equal |δ| at the
 *    lower cut the lower indices are dropped first, at the upper cut the higher indices are dropped;
 *  - della_magprune: equal |δ| in a row get increasing ranks in index order.
 *
 * Selection runs on the float bits: clearing the sign bit of an IEEE-754 float gives a uint32
 * that orders like |x| (NaN above +inf, as torch's comparator puts NaN first in descending order),
 * so a two-pass 16-bit radix select (key-cuts.ts) finds the cut in O(n) without sorting or
 * allocating keys. The selection and the masks (key-masks.ts) are the ones the streamed merges
 * (gta-stream.ts) run chunk by chunk.
 */
import { ParamError } from "../errors/index.js";
import { selectKey, selectKeys } from "./key-cuts.js";
import { KeyRangeMask, TopKMask } from "./key-masks.js";

export type SparsificationMethod = "magnitude" | "magnitude_outliers" | "random" | "della_magprune";

export interface SparsifyOptions {
  method: SparsificationMethod;
  density: number;
  /** L1 rescale of the survivors (mergekit's `rescale: true`). */
  rescale: boolean;
  /** magnitude_outliers: share of the largest entries to drop (mergekit default 0.01). */
  gamma?: number;
  /** della_magprune: half-width of the keep-probability range (mergekit default 0.15). */
  epsilon?: number;
  /** Tensor shape; della ranks along dim 1 (a 1-D tensor is one row). Defaults to 1-D. */
  shape?: readonly number[];
  /** Uniform [0,1) stream for random and della_magprune. */
  uniform?: () => number;
  /** Names tensor and model in error messages, e.g. `merge ties model.norm.weight (model a)`. */
  subject?: string;
}

/** Sparsifies `delta` in place with mergekit's semantics and returns it. */
export function sparsify(delta: Float32Array, o: SparsifyOptions): Float32Array {
  const subject = o.subject ?? "sparsify task vector";
  switch (o.method) {
    case "magnitude":
      return sparsifyMagnitude(delta, o.density, o.rescale, subject);
    case "magnitude_outliers":
      return sparsifyMagnitudeOutliers(delta, o.density, o.gamma ?? 0.01, o.rescale);
    case "random":
      return sparsifyRandom(delta, o.density, needUniform(o, subject), o.rescale, subject);
    case "della_magprune":
      return sparsifyDellaMagprune(delta, o.shape ?? [delta.length], o.density, o.epsilon ?? 0.15, needUniform(o, subject), o.rescale, subject);
  }
}

function needUniform(o: SparsifyOptions, subject: string): () => number {
  if (!o.uniform) throw new ParamError(`${subject}: ${o.method} sparsification needs a uniform random stream`);
  return o.uniform;
}

/** mergekit's `int(density * numel)`: Python's int() truncates toward zero. */
export function keepCount(density: number, numel: number): number {
  return Math.trunc(density * numel);
}

/**
 * Throws the ParamError mergekit's `assert k > 0` stands for, when magnitude pruning with this
 * density would keep nothing. Exported so a method's `check` can refuse the config up front.
 */
export function checkMagnitudeDensity(density: number, numel: number, subject: string): void {
  if (density >= 1 || numel === 0) return;
  const k = keepCount(density, numel);
  if (!(k > 0)) {
    throw new ParamError(
      `${subject}: density ${density} keeps int(${density}·${numel}) = ${k} of ${numel} elements, so magnitude pruning would drop the whole task vector (mergekit asserts k > 0); ` +
        `raise density to at least ${1 / numel} or leave this model out of the tensor`,
    );
  }
}

/** Throws the ParamError for a random-drop density that is not a probability (NaN or negative). */
export function checkRandomDensity(density: number, subject: string): void {
  if (density >= 1) return;
  if (!(density >= 0)) throw new ParamError(`${subject}: density ${density} is not a probability; use a density in [0, 1]`);
}

/** Throws unless density ± epsilon lies in (0, 1), which della_magprune requires for 0 < density < 1. */
export function checkDellaDensity(density: number, epsilon: number, subject: string): void {
  if (density >= 1 || density <= 0) return;
  if (density + epsilon >= 1 || density - epsilon <= 0) {
    throw new ParamError(
      `${subject}: della needs density ± epsilon inside (0, 1), got density ${density} and epsilon ${epsilon} ` +
        `(range ${density - epsilon} … ${density + epsilon}); lower epsilon below ${Math.min(density, 1 - density)}`,
    );
  }
}

/** Keeps the k = int(p·numel) largest |δ| of the whole flattened tensor. */
export function sparsifyMagnitude(delta: Float32Array, density: number, rescale: boolean, subject = "sparsify task vector"): Float32Array {
  if (density >= 1) return delta;
  const n = delta.length;
  if (n === 0) return delta;
  checkMagnitudeDensity(density, n, subject);
  const k = keepCount(density, n);
  if (k >= n) return delta;
  // The k-th largest key is the (n−k)-th smallest (0-based).
  const cut = selectKey(bitsOf(delta), n - k);
  const before = rescale ? l1(delta) : 0;
  new TopKMask(cut, k, n).apply(delta);
  if (rescale) rescaleL1(delta, before);
  return delta;
}

/**
 * DARE-style "breadcrumbs": drop the n_top largest and the n_bot smallest |δ|, i.e. keep the
 * ascending order's Python slice `[n_bot : -n_top]`. With n_top == 0 that slice is empty, so the
 * whole task vector is dropped — mergekit's quirk, kept on purpose.
 */
export function sparsifyMagnitudeOutliers(delta: Float32Array, density: number, gamma: number, rescale: boolean): Float32Array {
  if (density >= 1) return delta;
  const { start, stop } = outlierRange(density, gamma, delta.length);
  const before = rescale ? l1(delta) : 0;
  if (stop <= start) {
    delta.fill(0);
    return delta;
  }
  // keep ascending positions [start, stop): the keys at both ends, then the mask between them
  const [low, high] = selectKeys(bitsOf(delta), [start, stop - 1]);
  new KeyRangeMask(low, high, start, stop).apply(delta);
  if (rescale) rescaleL1(delta, before);
  return delta;
}

/**
 * The ascending positions [start, stop) breadcrumbs keeps of n: Python's slice [n_bot : −n_top]
 * with n_top = int(gamma·n) and n_bot = n − int(density·n) − n_top (n_top lowered when n_bot < 0).
 * Empty (stop ≤ start) when n_top is 0.
 */
export function outlierRange(density: number, gamma: number, n: number): { start: number; stop: number } {
  const target = keepCount(density, n);
  let nTop = keepCount(gamma, n);
  let nBot = n - target - nTop;
  if (nBot < 0) {
    nTop += nBot;
    nBot = 0;
  }
  return { start: pySliceIndex(nBot, n), stop: pySliceIndex(-nTop, n) };
}

/** DARE's random drop: keep each entry with probability `density` (uniform < density). */
export function sparsifyRandom(delta: Float32Array, density: number, uniform: () => number, rescale: boolean, subject = "sparsify task vector"): Float32Array {
  if (density >= 1) return delta;
  checkRandomDensity(density, subject);
  const before = rescale ? l1(delta) : 0;
  maskRandom(delta, density, uniform);
  if (rescale) rescaleL1(delta, before);
  return delta;
}

/** DARE's mask without the rescale: entry i drops unless its draw is < density, draws in index order. */
export function maskRandom(delta: Float32Array, density: number, uniform: () => number): void {
  for (let i = 0; i < delta.length; i++) if (!(uniform() < density)) delta[i] = 0;
}

/**
 * DELLA's MagPrune: within each row (along dim 1; a 1-D tensor is one row) rank |δ| ascending,
 * rank r = 1…n, and keep an entry with probability p − ε + 2ε·(r−1)/(n−1). One uniform is drawn per
 * element in flat (row-major) order, so the mask does not depend on how the ranking is computed.
 * A row of length 1 (0/0 in mergekit, which then fails in torch.bernoulli) gets probability p.
 */
export function sparsifyDellaMagprune(
  delta: Float32Array,
  shape: readonly number[],
  density: number,
  epsilon: number,
  uniform: () => number,
  rescale: boolean,
  subject = "sparsify task vector",
): Float32Array {
  if (density >= 1) return delta;
  if (density <= 0) {
    delta.fill(0);
    return delta;
  }
  checkDellaDensity(density, epsilon, subject);
  const n = delta.length;
  if (n === 0) return delta;
  // Ranking along dim 1: `outer` blocks of `len` entries spaced `inner` apart.
  const outer = shape.length < 2 ? 1 : shape[0];
  const len = shape.length < 2 ? n : shape[1];
  const inner = shape.length < 2 ? 1 : n / (outer * len);
  const probs = new Float32Array(n);
  const lo = density - epsilon;
  const span = 2 * epsilon;
  const bits = bitsOf(delta);
  const order = new RowOrder(len);
  const inv = 1 / (len - 1);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < inner; c++) {
      const start = o * len * inner + c;
      if (len === 1) {
        probs[start] = density;
        continue;
      }
      const idx = order.sort(bits, start, inner);
      for (let r = 0; r < len; r++) probs[start + idx[r] * inner] = lo + r * inv * span;
    }
  }
  const before = rescale ? l1(delta) : 0;
  for (let i = 0; i < n; i++) {
    if (!(uniform() < probs[i])) delta[i] = 0;
  }
  if (rescale) rescaleL1(delta, before);
  return delta;
}

/**
 * s + Σ|x| in float64, in index order (mergekit sums in fp32; the ratio agrees to fp32 precision).
 * A sum continued with `s` over consecutive chunks equals the whole array's, bit for bit.
 */
export function l1(x: Float32Array, s = 0): number {
  for (let i = 0; i < x.length; i++) s += Math.abs(x[i]);
  return s;
}

/**
 * mergekit's L1 rescale: multiply the masked tensor by ‖δ‖₁/‖δ⊙mask‖₁ (one fp32 scalar), unless
 * either norm is below 1e-7.
 */
export function rescaleL1(masked: Float32Array, before: number): void {
  const ratio = l1Ratio(before, l1(masked));
  if (ratio === 1) return;
  for (let i = 0; i < masked.length; i++) masked[i] *= ratio;
}

/** The fp32 factor of mergekit's L1 rescale from the two norms (1 when it is skipped). */
export function l1Ratio(before: number, after: number): number {
  if (before < 1e-7 || after < 1e-7) return 1;
  return Math.fround(Math.fround(before) / Math.fround(after));
}

/**
 * Stable ascending order of |x| along one row, by LSD radix sort on the 31-bit keys (8 bits per
 * pass, skipping passes where every key has the same byte). Scratch buffers are reused across rows.
 */
class RowOrder {
  private keys: Uint32Array;
  private keys2: Uint32Array;
  private idx: Uint32Array;
  private idx2: Uint32Array;
  private readonly count = new Uint32Array(256);
  constructor(private readonly len: number) {
    this.keys = new Uint32Array(len);
    this.keys2 = new Uint32Array(len);
    this.idx = new Uint32Array(len);
    this.idx2 = new Uint32Array(len);
  }
  /** Entries start, start+stride, … (len of them); returns row positions in ascending order. */
  sort(bits: Uint32Array, start: number, stride: number): Uint32Array {
    const len = this.len;
    const count = this.count;
    let keys = this.keys;
    let idx = this.idx;
    let keys2 = this.keys2;
    let idx2 = this.idx2;
    for (let j = 0; j < len; j++) {
      keys[j] = bits[start + j * stride] & 0x7fffffff;
      idx[j] = j;
    }
    for (let shift = 0; shift < 32; shift += 8) {
      count.fill(0);
      for (let j = 0; j < len; j++) count[(keys[j] >>> shift) & 255]++;
      if (count[(keys[0] >>> shift) & 255] === len) continue;
      let acc = 0;
      for (let b = 0; b < 256; b++) {
        const c = count[b];
        count[b] = acc;
        acc += c;
      }
      for (let j = 0; j < len; j++) {
        const k = keys[j];
        const pos = count[(k >>> shift) & 255]++;
        keys2[pos] = k;
        idx2[pos] = idx[j];
      }
      [keys, keys2] = [keys2, keys];
      [idx, idx2] = [idx2, idx];
    }
    this.keys = keys;
    this.keys2 = keys2;
    this.idx = idx;
    this.idx2 = idx2;
    return idx;
  }
}

/** Python's normalization of a slice bound. */
function pySliceIndex(v: number, n: number): number {
  return v < 0 ? Math.max(0, v + n) : Math.min(v, n);
}

function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}
