/**
 * The streaming form of the generalized task-arithmetic methods: the same bytes as the
 * whole-tensor `merge`, computed over row chunks with memory bounded by the chunk.
 *
 * Passes (each re-reads the chunks; δ is recomputed, it is cheap next to reading):
 *  0. per input: histogram of the high 16 bits of |δ|'s float bits (magnitude pruning, outliers),
 *     ‖δ‖₁ (rescale), and for random pruning ‖δ⊙mask‖₁ (the mask is counter-based per element);
 *  1. per selected high bucket: histogram of the low 16 bits → the exact cut key, how many keys
 *     lie below it and how many equal it, as `selectKey` finds on the whole tensor;
 *  2. ‖δ⊙mask‖₁ of magnitude-pruned inputs that rescale.
 * Apply then masks each chunk in flat order with running tie counters — equal |δ| at a cut are
 * decided by flat index exactly as the whole-tensor sparsifiers do — and mixes as `merge` does.
 * L1 norms are float64 sums in flat order, so they equal the whole-tensor sums bit for bit.
 *
 * With raw bf16 inputs (`StreamChunk.bf16`) nothing is decoded into fp32 copies: δ comes from a
 * 64K-entry bf16→fp32 table inside fused loops (the stats passes never store δ), and apply works
 * in L1-sized blocks: δ, mask, mix and the add of the base per block. fp32(x − b) is the same value
 * either way, so the bytes are those of the fp32 path.
 */
import { ParamError } from "../../../proto/errors.js";
import { bf16ToF32Table } from "../../tensor/convert.js";
import type { StreamChunk, StreamInfo, TensorStream } from "../define-merge-method.js";
import { checkMagnitudeDensity, keepCount, l1Ratio, type KeySelection } from "../sparsify.js";
import { addScaled, mixTaskVectors, numParam, requireBase, subjectOf, weightOf, type GtaVariant, type TaskVector } from "./generalized-task-arithmetic.js";

type Kind = "keep" | "zero" | "magnitude" | "outliers" | "random";

interface Plan {
  index: number;
  weight: number;
  kind: Kind;
  density: number;
  rescale: boolean;
  /** Positions of the ascending |δ| order to select (magnitude: [n−k]; outliers: [start, stop−1]). */
  positions: number[];
  hiHist?: Uint32Array;
  his: number[];
  belowHi: number[];
  loHists: Uint32Array[];
  keys: KeySelection[];
  before: number;
  after: number;
  ratio: number;
  // masking state, running across the chunks of one pass
  tiesLeft: number;
  skipLow: number;
  keepHigh: number;
  tl: number;
  th: number;
}

/** One fp32 scratch buffer per slot, grown on demand; views share the buffer. */
class Bufs {
  private f: Float32Array[] = [];
  get(i: number, n: number): Float32Array {
    let b = this.f[i];
    if (!b || b.length < n) this.f[i] = b = new Float32Array(n);
    return b.subarray(0, n);
  }
}

/** The streaming form for these inputs, or undefined when they must be merged whole (della). */
export function gtaStream(v: GtaVariant, info: StreamInfo): TensorStream | undefined {
  requireBase(v.name, info);
  const n = info.numel;
  if (n === 0 || n >= 2 ** 32) return undefined;
  const rescale = info.params.rescale === undefined ? v.rescale : info.params.rescale === true;
  const normalize = info.params.normalize === undefined ? v.normalize : info.params.normalize === true;
  const lambda = numParam(info.params, "lambda", 1);
  const plans: Plan[] = [];
  for (let i = 0; i < info.inputs.length; i++) {
    if (i === info.baseIndex) continue;
    const input = info.inputs[i];
    const weight = weightOf(v.name, info.tensorName, input);
    const density = numParam(input.params, "density", 1);
    const p: Plan = {
      index: i, weight, kind: "keep", density, rescale: false, positions: [], his: [], belowHi: [], loHists: [], keys: [],
      before: 0, after: 0, ratio: 1, tiesLeft: 0, skipLow: 0, keepHigh: 0, tl: 0, th: 0,
    };
    plans.push(p);
    if (v.sparsification === null || density >= 1) continue;
    const subject = subjectOf(v.name, info.tensorName, input.model);
    switch (v.sparsification) {
      case "della_magprune":
        return undefined; // ranks within rows and rescales per tensor: not streamed yet
      case "random":
        if (!(density >= 0)) throw new ParamError(`${subject}: density ${density} is not a probability; use a density in [0, 1]`);
        p.kind = "random";
        p.rescale = rescale;
        break;
      case "magnitude": {
        checkMagnitudeDensity(density, n, subject);
        const k = keepCount(density, n);
        if (k >= n) break;
        p.kind = "magnitude";
        p.rescale = rescale;
        p.positions = [n - k];
        break;
      }
      case "magnitude_outliers": {
        const target = keepCount(density, n);
        let nTop = keepCount(numParam(input.params, "gamma", 0.01), n);
        let nBot = n - target - nTop;
        if (nBot < 0) {
          nTop += nBot;
          nBot = 0;
        }
        const start = nBot < 0 ? Math.max(0, nBot + n) : Math.min(nBot, n);
        const stop = -nTop < 0 ? Math.max(0, n - nTop) : Math.min(-nTop, n);
        if (stop <= start) {
          p.kind = "zero";
          break;
        }
        p.kind = "outliers";
        p.rescale = rescale;
        p.positions = stop - 1 === start ? [start] : [start, stop - 1];
        break;
      }
    }
  }
  return new GtaStream(v, info, plans, normalize, lambda);
}

/** Elements per block of the raw bf16 apply: every block buffer stays in L1/L2. */
const APPLY_BLOCK = 4096;
/** One fp32 and its bits, to take a float's bits inside a loop without a scratch array. */
const oneF = new Float32Array(1);
const oneU = new Uint32Array(oneF.buffer);

class GtaStream implements TensorStream {
  readonly rawBF16 = true;
  private readonly lut = bf16ToF32Table();
  private readonly bufs = new Bufs();
  private readonly selecting: Plan[];
  constructor(
    private readonly v: GtaVariant,
    private readonly info: StreamInfo,
    private readonly plans: Plan[],
    private readonly normalize: boolean,
    private readonly lambda: number,
  ) {
    this.selecting = plans.filter((p) => p.kind === "magnitude" || p.kind === "outliers");
  }

  needsPass(pass: number): boolean {
    if (pass > 0) this.endPass(pass - 1);
    switch (pass) {
      case 0:
        return this.selecting.length > 0 || this.plans.some((p) => p.rescale);
      case 1:
        return this.selecting.length > 0;
      case 2:
        return this.selecting.some((p) => p.rescale);
      default:
        return false;
    }
  }

  private endPass(pass: number): void {
    if (pass === 0) {
      for (const p of this.plans) {
        if (p.kind === "random" && p.rescale) p.ratio = l1Ratio(p.before, p.after);
        if (!p.hiHist) continue;
        for (const r of p.positions) {
          const h = p.hiHist;
          let acc = 0;
          let hi = 0;
          while (acc + h[hi] <= r) acc += h[hi++];
          p.his.push(hi);
          p.belowHi.push(acc);
          p.loHists.push(p.his.indexOf(hi) < p.his.length - 1 ? p.loHists[p.his.indexOf(hi)] : new Uint32Array(65536));
        }
        p.hiHist = undefined;
      }
    } else if (pass === 1) {
      for (const p of this.selecting) {
        p.positions.forEach((r, j) => {
          const h = p.loHists[j];
          const rr = r - p.belowHi[j];
          let acc = 0;
          let lo = 0;
          while (acc + h[lo] <= rr) acc += h[lo++];
          p.keys.push({ key: ((p.his[j] << 16) | lo) >>> 0, below: p.belowHi[j] + acc, equal: h[lo] });
        });
        p.loHists = [];
        this.resetCounters(p);
      }
    } else if (pass === 2) {
      for (const p of this.selecting) {
        if (p.rescale) p.ratio = l1Ratio(p.before, p.after);
        this.resetCounters(p);
      }
    }
  }

  private resetCounters(p: Plan): void {
    const n = this.info.numel;
    if (p.kind === "magnitude") {
      const cut = p.keys[0];
      const k = keepCount(p.density, n);
      p.tiesLeft = k - (n - cut.below - cut.equal);
    } else {
      const low = p.keys[0];
      const high = p.keys[p.keys.length - 1];
      const start = p.positions[0];
      const stop = p.positions[p.positions.length - 1] + 1;
      p.skipLow = start - low.below;
      p.keepHigh = stop - high.below;
      p.tl = 0;
      p.th = 0;
    }
  }

  /** δ = fp32(X − B) of one input over the chunk, into scratch slot `slot`. */
  private delta(chunk: StreamChunk, p: Plan, slot: number): Float32Array {
    const ctx = chunk.ctx;
    const raw = chunk.bf16;
    if (raw) {
      const b = raw[ctx.baseIndex];
      const d = this.bufs.get(slot, b.length);
      deltaBF16(raw[p.index], b, 0, b.length, this.lut, d);
      return d;
    }
    const base = ctx.inputs[ctx.baseIndex].data;
    const x = ctx.inputs[p.index].data;
    const len = base.length;
    if (x.length !== len) {
      throw new ParamError(`${subjectOf(this.v.name, ctx.tensorName, ctx.inputs[p.index].model)}: input has ${x.length} elements but the base has ${len}; inputs must share the base's shape`);
    }
    const d = this.bufs.get(slot, len);
    for (let j = 0; j < len; j++) d[j] = x[j] - base[j];
    return d;
  }

  stats(pass: number, chunk: StreamChunk): void {
    const raw = chunk.bf16;
    for (const p of this.plans) {
      if (raw && pass < 2) {
        this.statsBF16(pass, chunk, raw, p);
        continue;
      }
      if (pass === 0) {
        if (p.kind === "keep" || p.kind === "zero") continue;
        const d = this.delta(chunk, p, 0);
        const len = d.length;
        if (p.rescale) p.before = addAbs(d, p.before);
        if (p.kind === "random") {
          if (!p.rescale) continue;
          maskRandom(d, p.density, chunk.ctx.random(p.index));
          p.after = addAbs(d, p.after);
          continue;
        }
        const h = (p.hiHist ??= new Uint32Array(65536));
        const bits = new Uint32Array(d.buffer, d.byteOffset, len);
        for (let j = 0; j < len; j++) h[(bits[j] & 0x7fffffff) >>> 16]++;
      } else if (pass === 1) {
        if (p.kind !== "magnitude" && p.kind !== "outliers") continue;
        const d = this.delta(chunk, p, 0);
        const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
        const hiA = p.his[0];
        const hiB = p.his[p.his.length - 1];
        const hA = p.loHists[0];
        const hB = p.loHists[p.loHists.length - 1];
        for (let j = 0; j < bits.length; j++) {
          const b = bits[j] & 0x7fffffff;
          const hi = b >>> 16;
          if (hi === hiA) hA[b & 0xffff]++;
          else if (hi === hiB) hB[b & 0xffff]++;
        }
      } else if (pass === 2) {
        if (!p.rescale || (p.kind !== "magnitude" && p.kind !== "outliers")) continue;
        const d = this.delta(chunk, p, 0);
        this.maskSelected(p, d);
        p.after = addAbs(d, p.after);
      }
    }
  }

  /** Passes 0 and 1 straight from bf16 bits: the same histograms and sums, δ never stored. */
  private statsBF16(pass: number, chunk: StreamChunk, raw: readonly Uint16Array[], p: Plan): void {
    const x = raw[p.index];
    const b = raw[chunk.ctx.baseIndex];
    const lut = this.lut;
    const len = b.length;
    const f = oneF;
    const u = oneU;
    if (pass === 0) {
      if (p.kind === "keep" || p.kind === "zero") return;
      if (p.kind === "random") {
        if (!p.rescale) return;
        const [k0, k1, k2] = keyOf(chunk, p.index);
        const m = Math.imul(k2, 0x9e3779b9); // the counter's high word is 0: n < 2^32
        const thr = Math.min(Math.ceil(p.density * 16777216), 16777216); // as in maskRandomAt
        let before = p.before;
        let after = p.after;
        for (let j = 0, i = chunk.start; j < len; j++, i++) {
          f[0] = lut[x[j]] - lut[b[j]];
          u[0] &= 0x7fffffff;
          before += f[0];
          // uniformAt(k0, k1, k2, i), inlined
          let z = (i >>> 0) ^ k0;
          z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
          z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
          z ^= z >>> 16;
          z = (z + k1) ^ m;
          z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
          z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
          z ^= z >>> 16;
          u[0] &= ((z >>> 8) - thr) >> 31; // dropped: |δ| becomes +0, which leaves a sum ≥ 0 unchanged
          after += f[0];
        }
        p.before = before;
        p.after = after;
        return;
      }
      const h = (p.hiHist ??= new Uint32Array(65536));
      if (p.rescale) {
        let s = p.before;
        for (let j = 0; j < len; j++) {
          const d = lut[x[j]] - lut[b[j]];
          f[0] = d;
          h[(u[0] & 0x7fffffff) >>> 16]++;
          s += Math.abs(f[0]);
        }
        p.before = s;
      } else {
        for (let j = 0; j < len; j++) {
          f[0] = lut[x[j]] - lut[b[j]];
          h[(u[0] & 0x7fffffff) >>> 16]++;
        }
      }
      return;
    }
    if (p.kind !== "magnitude" && p.kind !== "outliers") return;
    const hiA = p.his[0];
    const hiB = p.his[p.his.length - 1];
    const hA = p.loHists[0];
    const hB = p.loHists[p.loHists.length - 1];
    for (let j = 0; j < len; j++) {
      f[0] = lut[x[j]] - lut[b[j]];
      const bits = u[0] & 0x7fffffff;
      const hi = bits >>> 16;
      if (hi === hiA) hA[bits & 0xffff]++;
      else if (hi === hiB) hB[bits & 0xffff]++;
    }
  }

  /** Zeroes the entries of a chunk of δ that the whole-tensor sparsifier drops (no rescale). */
  private maskSelected(p: Plan, d: Float32Array): void {
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    const len = d.length;
    if (p.kind === "magnitude") {
      const t = p.keys[0].key;
      let tiesLeft = p.tiesLeft;
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
      p.tiesLeft = tiesLeft;
      return;
    }
    const lk = p.keys[0].key;
    const hk = p.keys[p.keys.length - 1].key;
    const skipLow = p.skipLow;
    const keepHigh = p.keepHigh;
    let tl = p.tl;
    let th = p.th;
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
    p.tl = tl;
    p.th = th;
  }

  /**
   * apply from bf16 bits, block by block: per block δ of every input (table), its mask (running
   * tie counters and draws continue across blocks in flat order), the rescale, the mix and the
   * base — the same operations on the same values as the whole-chunk form.
   */
  private applyBF16(chunk: StreamChunk, raw: readonly Uint16Array[]): Float32Array {
    const ctx = chunk.ctx;
    const lut = this.lut;
    const base = raw[ctx.baseIndex];
    const len = base.length;
    const plans = this.plans;
    const m = plans.length;
    const out = this.bufs.get(0, len);
    if (m === 0) {
      for (let j = 0; j < len; j++) out[j] = lut[base[j]];
      return out;
    }
    const B = APPLY_BLOCK;
    const ds = plans.map((_, t) => this.bufs.get(t + 1, B));
    const bv = this.bufs.get(m + 1, B);
    const mixBuf = this.bufs.get(m + 2, B);
    const keys = plans.map((p) => (p.kind === "random" ? keyOf(chunk, p.index) : undefined));
    const tvs: TaskVector[] = plans.map((p, t) => ({ index: p.index, input: ctx.inputs[p.index], delta: ds[t], weight: p.weight }));
    for (let s = 0; s < len; s += B) {
      const n = Math.min(B, len - s);
      for (let t = 0; t < m; t++) {
        const p = plans[t];
        const d = n === B ? ds[t] : ds[t].subarray(0, n);
        tvs[t].delta = d;
        if (p.kind === "zero") {
          d.fill(0);
          continue;
        }
        deltaBF16(raw[p.index], base, s, n, lut, d);
        if (p.kind === "random") maskRandomAt(d, p.density, keys[t]!, chunk.start + s);
        else if (p.kind !== "keep") this.maskSelected(p, d);
        const r = p.ratio;
        if (r !== 1) for (let k = 0; k < n; k++) d[k] *= r;
      }
      const b = n === B ? bv : bv.subarray(0, n);
      for (let k = 0; k < n; k++) b[k] = lut[base[s + k]];
      out.set(addScaled(b, mixTaskVectors(tvs, n, this.v.consensus, this.normalize, mixBuf), this.lambda), s);
    }
    return out;
  }

  apply(chunk: StreamChunk): Float32Array {
    if (chunk.bf16) return this.applyBF16(chunk, chunk.bf16);
    const ctx = chunk.ctx;
    const base = ctx.inputs[ctx.baseIndex].data;
    const len = base.length;
    if (this.plans.length === 0) return Float32Array.from(base);
    const tvs: TaskVector[] = [];
    this.plans.forEach((p, slot) => {
      const d = this.delta(chunk, p, slot + 1);
      if (p.kind === "zero") d.fill(0);
      else if (p.kind === "random") maskRandom(d, p.density, ctx.random(p.index));
      else if (p.kind !== "keep") this.maskSelected(p, d);
      const r = p.ratio;
      if (r !== 1) for (let j = 0; j < len; j++) d[j] *= r;
      tvs.push({ index: p.index, input: ctx.inputs[p.index], delta: d, weight: p.weight });
    });
    return addScaled(base, mixTaskVectors(tvs, len, this.v.consensus, this.normalize), this.lambda);
  }
}

/** The key of input i's random stream (from the chunk, or derived from its generator's draws). */
function keyOf(chunk: StreamChunk, i: number): readonly [number, number, number] {
  if (!chunk.randomKey) throw new ParamError(`${chunk.ctx.tensorName}: a streamed random mask needs the chunk's random keys`);
  return chunk.randomKey(i);
}

/** d[k] = fp32(x[s+k] − b[s+k]) for k < len, from bf16 bits. */
function deltaBF16(x: Uint16Array, b: Uint16Array, s: number, len: number, lut: Float32Array, d: Float32Array): void {
  for (let k = 0; k < len; k++) d[k] = lut[x[s + k]] - lut[b[s + k]];
}

/** DARE's mask with draws start, start+1, … of the keyed stream: uniformAt inlined. */
function maskRandomAt(d: Float32Array, density: number, key: readonly [number, number, number], start: number): void {
  const [k0, k1, k2] = key;
  const m = Math.imul(k2, 0x9e3779b9); // the counter's high word is 0: n < 2^32
  const len = d.length;
  const bits = new Uint32Array(d.buffer, d.byteOffset, len);
  // draw v/2^24 < density ⟺ v < ceil(density·2^24) for the integer v: a sign bit, no branch
  const thr = Math.min(Math.ceil(density * 16777216), 16777216);
  for (let j = 0, i = start; j < len; j++, i++) {
    let z = (i >>> 0) ^ k0;
    z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
    z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
    z ^= z >>> 16;
    z = (z + k1) ^ m;
    z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
    z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
    z ^= z >>> 16;
    bits[j] &= ((z >>> 8) - thr) >> 31;
  }
}

/** DARE's mask on a chunk: element j drops unless its draw is < density. */
function maskRandom(d: Float32Array, density: number, uniform: () => number): void {
  for (let j = 0; j < d.length; j++) if (!(uniform() < density)) d[j] = 0;
}

/** s + Σ|d_j| in float64, in index order (the whole-tensor `l1` continued across chunks). */
function addAbs(d: Float32Array, s: number): number {
  for (let j = 0; j < d.length; j++) s += Math.abs(d[j]);
  return s;
}
