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
 * With raw bf16 inputs (`StreamChunk.bf16`, byte offsets in the kernel arena) nothing is decoded
 * into fp32 copies: the WebAssembly SIMD kernels work in L1-sized blocks — δ, histograms and sums
 * in the stats passes; δ, mask, rescale, mix, the base and the bf16 rounding in apply — each the
 * same operations on the same values as the fp32 path, so the bytes are identical.
 */
import { ParamError } from "../errors/index.js";
import { numelOf } from "@mergeloom/proto";
import { kernelArena } from "../kernels/wasm-kernels.js";
import { encodeFromF32 } from "../tensor/convert.js";
import type { StreamChunk, StreamInfo, TensorStream } from "./define-merge-method.js";
import { checkDellaDensity, checkMagnitudeDensity, keepCount, l1Ratio, sparsifyDellaMagprune, type KeySelection } from "./sparsify.js";
import { addScaled, mixTaskVectors, numParam, requireBase, subjectOf, weightOf, type GtaVariant, type TaskVector } from "./generalized-task-arithmetic.js";

type Kind = "keep" | "zero" | "magnitude" | "outliers" | "random" | "della";

interface Plan {
  index: number;
  weight: number;
  kind: Kind;
  density: number;
  /** della: half-width of the keep-probability range. */
  epsilon: number;
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
  /** Arena offsets (raw bf16 path): high histogram, low histograms, [before, after] sums. */
  hiAt?: number;
  loAt: number[];
  sumsAt?: number;
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
      index: i, weight, kind: "keep", density, epsilon: 0, rescale: false, positions: [], his: [], belowHi: [], loHists: [], loAt: [], keys: [],
      before: 0, after: 0, ratio: 1, tiesLeft: 0, skipLow: 0, keepHigh: 0, tl: 0, th: 0,
    };
    plans.push(p);
    if (v.sparsification === null || density >= 1) continue;
    const subject = subjectOf(v.name, info.tensorName, input.model);
    switch (v.sparsification) {
      case "della_magprune": {
        // Ranks run along dim 1 within each dim-0 row, and chunks are whole dim-0 rows, so each
        // chunk is masked exactly as in the whole tensor; a 1-D tensor is one ranked row: whole.
        if (info.shape.length < 2) return undefined;
        if (density <= 0) {
          p.kind = "zero";
          break;
        }
        p.epsilon = numParam(input.params, "epsilon", 0.15);
        checkDellaDensity(density, p.epsilon, subject);
        p.kind = "della";
        p.rescale = rescale;
        break;
      }
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

/** Elements per block of the raw bf16 kernels: every block buffer stays in L1/L2. */
const BLOCK = 4096;
const HIST_BYTES = 65536 * 4;

/** Arena offsets of the raw path's block buffers (allocated once per tensor). */
interface Work {
  ds: number;
  dsPtrs: number;
  ws: number;
  mix: number;
  tmp: number;
  state: number;
}

class GtaStream implements TensorStream {
  /** della masks chunks with the fp32 sparsifier, so its inputs come decoded. */
  readonly rawBF16: boolean;
  private readonly bufs = new Bufs();
  private work?: Work;
  private readonly selecting: Plan[];
  constructor(
    private readonly v: GtaVariant,
    private readonly info: StreamInfo,
    private readonly plans: Plan[],
    private readonly normalize: boolean,
    private readonly lambda: number,
  ) {
    this.selecting = plans.filter((p) => p.kind === "magnitude" || p.kind === "outliers");
    this.rawBF16 = !plans.some((p) => p.kind === "della");
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
    if (this.work) this.syncFromArena(pass);
    if (pass === 0) {
      for (const p of this.plans) {
        if ((p.kind === "random" || p.kind === "della") && p.rescale) p.ratio = l1Ratio(p.before, p.after);
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
    if (chunk.bf16) {
      this.statsBF16(pass, chunk, chunk.bf16);
      return;
    }
    for (const p of this.plans) {
      if (pass === 0) {
        if (p.kind === "keep" || p.kind === "zero") continue;
        const d = this.delta(chunk, p, 0);
        const len = d.length;
        if (p.rescale) p.before = addAbs(d, p.before);
        if (p.kind === "random" || p.kind === "della") {
          if (!p.rescale) continue;
          this.maskRandomly(p, d, chunk);
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

  /** The raw path's block buffers, allocated in the arena on the tensor's first chunk. */
  private workspace(): Work {
    if (this.work) return this.work;
    const a = kernelArena();
    const m = this.plans.length;
    const w: Work = { ds: a.alloc(4 * BLOCK * Math.max(1, m)), dsPtrs: a.alloc(4 * m), ws: a.alloc(4 * m), mix: a.alloc(4 * BLOCK), tmp: a.alloc(4 * BLOCK), state: a.alloc(8) };
    a.u32(w.dsPtrs, m).set(this.plans.map((_, t) => w.ds + 4 * BLOCK * t));
    a.f32(w.ws, m).set(this.plans.map((p) => p.weight));
    for (const p of this.plans) {
      if (p.kind === "magnitude" || p.kind === "outliers") p.hiAt = zeroed(a.alloc(HIST_BYTES), HIST_BYTES);
      if (p.kind === "random" && p.rescale) p.sumsAt = zeroed(a.alloc(16), 16);
    }
    return (this.work = w);
  }

  /** Copies what the kernels accumulated in pass `pass` into the plans, for endPass. */
  private syncFromArena(pass: number): void {
    const a = kernelArena();
    for (const p of this.plans) {
      if (pass === 0 && p.hiAt !== undefined && p.hiHist === undefined) p.hiHist = Uint32Array.from(a.u32(p.hiAt, 65536));
      if (pass === 0 && p.sumsAt !== undefined) [p.before, p.after] = a.f64(p.sumsAt, 2);
      if (pass === 1 && p.loAt.length) p.loHists = p.loAt.map((at) => Uint32Array.from(a.u32(at, 65536)));
    }
  }

  /** Stats passes from bf16 bits (arena offsets) with the SIMD kernels: passes 0 and 1 over the whole chunk, pass 2 block by block. */
  private statsBF16(pass: number, chunk: StreamChunk, raw: readonly number[]): void {
    const a = kernelArena();
    const w = this.workspace();
    const k = a.k;
    const base = raw[chunk.ctx.baseIndex];
    const len = numelOf(chunk.ctx.shape);
    for (const p of this.plans) {
      if (p.kind === "keep" || p.kind === "zero") continue;
      if (pass === 0 && p.kind === "random" && !p.rescale) continue;
      if (pass > 0 && p.kind === "random") continue;
      if (pass === 2 && !p.rescale) continue;
      if (pass === 1 && p.loAt.length === 0) {
        // the low histograms of the selected high buckets (one shared when both cuts share it)
        for (const [j, hi] of p.his.entries()) {
          const first = p.his.indexOf(hi);
          p.loAt.push(first < j ? p.loAt[first] : zeroed(a.alloc(HIST_BYTES), HIST_BYTES));
        }
      }
      const x = raw[p.index];
      if (pass < 2) {
        // whole chunk at once: δ is computed inside the kernels and never stored
        if (pass === 1) k.histLoBF16(p.loAt[0], p.loAt[p.loAt.length - 1], p.his[0], p.his[p.his.length - 1], x, base, len);
        else if (p.kind === "random") {
          const [k0, k1, k2] = keyOf(chunk, p.index);
          k.randomL1BF16(x, base, len, k0, k1, Math.imul(k2, 0x9e3779b9), randomThreshold(p.density), chunk.start, p.sumsAt!);
        } else if (p.rescale) p.before = k.histHiL1BF16(p.hiAt!, x, base, len, p.before);
        else k.histHiBF16(p.hiAt!, x, base, len);
        continue;
      }
      const d = w.ds;
      for (let s = 0; s < len; s += BLOCK) {
        const n = Math.min(BLOCK, len - s);
        k.deltaBF16(d, x + 2 * s, base + 2 * s, n);
        this.maskBlock(p, d, n, chunk.start + s, chunk);
        p.after = k.l1(d, n, p.after);
      }
    }
  }

  /** The sparsifier's mask over one block of δ at arena offset d (flat index of its first element: at). */
  private maskBlock(p: Plan, d: number, n: number, at: number, chunk: StreamChunk): void {
    const a = kernelArena();
    if (p.kind === "random") {
      const [k0, k1, k2] = keyOf(chunk, p.index);
      a.k.maskRandom(d, n, k0, k1, Math.imul(k2, 0x9e3779b9), randomThreshold(p.density), at);
    } else if (p.kind === "magnitude") {
      p.tiesLeft = a.k.maskMagnitude(d, n, p.keys[0].key, p.tiesLeft);
    } else if (p.kind === "outliers") {
      const st = this.work!.state;
      const state = a.u32(st, 2);
      state[0] = p.tl;
      state[1] = p.th;
      a.k.maskOutliers(d, n, p.keys[0].key, p.keys[p.keys.length - 1].key, p.skipLow, p.keepHigh, st);
      const after = a.u32(st, 2);
      p.tl = after[0];
      p.th = after[1];
    }
  }

  /** DARE's or DELLA's random mask on a chunk of δ (no rescale: the stream applies the tensor's ratio). */
  private maskRandomly(p: Plan, d: Float32Array, chunk: StreamChunk): void {
    const random = chunk.ctx.random(p.index);
    if (p.kind === "random") maskRandom(d, p.density, random);
    else sparsifyDellaMagprune(d, chunk.ctx.shape, p.density, p.epsilon, random, false);
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
   * apply from bf16 bits, block by block: per block δ of every input, its mask (running tie
   * counters and draws continue across blocks in flat order), the rescale, the mix, the base and
   * the output encoding — the same operations on the same values as the whole-chunk form. Writes
   * bf16 bits at arena offset `outBF16`, or fp32 values into `outF32`.
   */
  private applyRaw(chunk: StreamChunk, raw: readonly number[], out: { bf16: number } | { f32: Float32Array }): void {
    const a = kernelArena();
    const w = this.workspace();
    const k = a.k;
    const ctx = chunk.ctx;
    const base = raw[ctx.baseIndex];
    const len = numelOf(ctx.shape);
    const plans = this.plans;
    const m = plans.length;
    const lambda = Math.fround(this.lambda);
    let div = 1;
    if (!this.v.consensus && this.normalize) {
      div = 0;
      for (const p of plans) div = Math.fround(div + Math.fround(p.weight));
      if (Math.abs(div) < 1e-8) div = 1;
    }
    for (let s = 0; s < len; s += BLOCK) {
      const n = Math.min(BLOCK, len - s);
      for (let t = 0; t < m; t++) {
        const p = plans[t];
        const d = w.ds + 4 * BLOCK * t;
        if (p.kind === "zero") {
          k.zeroF32(d, n);
          continue;
        }
        k.deltaBF16(d, raw[p.index] + 2 * s, base + 2 * s, n);
        if (p.kind !== "keep") this.maskBlock(p, d, n, chunk.start + s, chunk);
        if (p.ratio !== 1) k.scaleF64(d, n, p.ratio);
      }
      if (this.v.consensus) k.mixConsensus(w.mix, w.dsPtrs, w.ws, m, n, this.normalize ? 1 : 0);
      else k.mixSum(w.mix, w.dsPtrs, w.ws, m, n, div);
      if ("bf16" in out) k.finishBF16(out.bf16 + 2 * s, w.mix, base + 2 * s, n, lambda);
      else {
        k.finishF32(w.tmp, w.mix, base + 2 * s, n, lambda);
        out.f32.set(a.f32(w.tmp, n), s);
      }
    }
  }

  applyBF16(chunk: StreamChunk, out: number): void {
    const raw = chunk.bf16;
    if (!raw || this.plans.length === 0) {
      // only the base: its own bits, through fp32 like every other output
      const f = this.apply(chunk);
      const a = kernelArena();
      const bytes = encodeFromF32(f, "BF16");
      a.u16(out, f.length).set(new Uint16Array(bytes.buffer, bytes.byteOffset, f.length));
      return;
    }
    this.applyRaw(chunk, raw, { bf16: out });
  }

  apply(chunk: StreamChunk): Float32Array {
    if (chunk.bf16 && this.plans.length > 0) {
      const out = this.bufs.get(0, numelOf(chunk.ctx.shape));
      this.applyRaw(chunk, chunk.bf16, { f32: out });
      return out;
    }
    const ctx = chunk.ctx;
    const base = ctx.inputs[ctx.baseIndex].data;
    const len = base.length;
    if (this.plans.length === 0) return Float32Array.from(base);
    const tvs: TaskVector[] = [];
    this.plans.forEach((p, slot) => {
      const d = this.delta(chunk, p, slot + 1);
      if (p.kind === "zero") d.fill(0);
      else if (p.kind === "random" || p.kind === "della") this.maskRandomly(p, d, chunk);
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

/** DARE keeps element i when its draw v/2^24 < density ⟺ v < ceil(density·2^24) for the integer v. */
function randomThreshold(density: number): number {
  return Math.min(Math.ceil(density * 16777216), 16777216);
}

/** Zero-fills `bytes` bytes of the arena at p and returns p. */
function zeroed(p: number, bytes: number): number {
  kernelArena().u8(p, bytes).fill(0);
  return p;
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
