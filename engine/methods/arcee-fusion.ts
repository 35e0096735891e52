/**
 * arcee_fusion: keeps the other model's change only where it matters. Importance of an element is
 * |x − base| times the KL divergence KL(softmax(x) ‖ softmax(base)) of its row (last dim; a 1-D
 * tensor is one row, +1e-8 on both distributions). Elements with importance ≥ median + 1.5·IQR
 * take x, the others keep the base.
 *
 * Quantiles are mergekit's: sorted[int(q·(n−1))], with q·(n−1) in fp32. For tensors of more than
 * 1e6 elements mergekit sorts an unseeded random sample of 1e6 of them; here the sample is drawn
 * from the tensor's deterministic stream (ctx.random(0)), so results are reproducible but, like
 * mergekit's own runs, vary with the sample (one sample serves all three quantiles; mergekit draws two).
 *
 * Numerics: softmax and KL per row in float64, rounded to fp32; importance in fp32; the fused
 * value is base + (x − base) in fp32, as in mergekit.
 *
 * Streaming (tensors of 2 or more dims, whose KL rows lie inside a chunk's rows): pass 0 builds a
 * histogram of the high 16 bits of the pooled importances' order keys, pass 1 of the low 16 bits
 * in the buckets holding the three quantile positions; that gives the exact values the sort
 * finds. The sample is the same index set (the tensor's draws from 0), kept as sorted indices.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, type MergeContext, type StreamChunk, type StreamInfo, type TensorStream } from "./define-merge-method.js";

const f32 = Math.fround;
const SAMPLE = 1_000_000;
const KL_EPS = 1e-8;

function validate(ctx: Pick<MergeContext, "tensorName" | "baseIndex"> & { inputs: readonly unknown[] }): void {
  if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with arcee_fusion: a base model is required; set base_model`);
  if (ctx.inputs.length > 2) {
    throw new ParamError(`merge ${ctx.tensorName} with arcee_fusion: expects exactly two models (the base and one other), got ${ctx.inputs.length}`);
  }
}

/** Softmax of v (max-subtracted) plus eps, in float64. */
function softmaxEps(v: Float32Array, s: number, len: number, out: Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < len; j++) max = Math.max(max, v[s + j]);
  let z = 0;
  for (let j = 0; j < len; j++) {
    out[j] = Math.exp(v[s + j] - max);
    z += out[j];
  }
  for (let j = 0; j < len; j++) out[j] = f32(f32(out[j] / z) + KL_EPS);
}

/** Importance |x − base|·KL(row) of every element of whole rows of `len` elements. */
function importanceOf(x: Float32Array, base: Float32Array, len: number, out: Float32Array): Float32Array {
  const p = new Float64Array(len);
  const q = new Float64Array(len);
  for (let s = 0; s < out.length; s += len) {
    softmaxEps(x, s, len, p);
    softmaxEps(base, s, len, q);
    let kl = 0;
    for (let j = 0; j < len; j++) kl += p[j] * Math.log(p[j] / q[j]);
    const klf = f32(kl);
    for (let j = 0; j < len; j++) out[s + j] = Math.abs(f32(x[s + j] - base[s + j])) * klf;
  }
  return out;
}

/** x where the importance reaches the threshold, else the base. */
function fuse(x: Float32Array, base: Float32Array, importance: Float32Array, threshold: number, out: Float32Array): Float32Array {
  for (let k = 0; k < out.length; k++) out[k] = importance[k] >= threshold ? base[k] + f32(x[k] - base[k]) : base[k];
  return out;
}

/** Floyd's algorithm: a uniform SAMPLE-subset of the indices [0, n) in O(SAMPLE) memory. */
function sampleIndices(n: number, random: () => number): Set<number> {
  const picked = new Set<number>();
  for (let j = n - SAMPLE; j < n; j++) {
    const r = Math.floor(random() * (j + 1));
    picked.add(picked.has(r) ? j : r);
  }
  return picked;
}

/** Positions int(q·(m−1)) (q·(m−1) in fp32) of the quantiles in a sorted pool of m values. */
function quantilePositions(m: number, qs: readonly number[]): number[] {
  const last = f32(m - 1);
  return qs.map((q) => Math.trunc(f32(f32(q) * last)));
}

/** mergekit's approximate_quantiles: the (possibly sampled) values sorted, indexed at int(q·(n−1)). */
function quantiles(values: Float32Array, qs: readonly number[], random: () => number): number[] {
  let pool: Float32Array;
  if (values.length > SAMPLE) {
    pool = new Float32Array(SAMPLE);
    let k = 0;
    for (const i of sampleIndices(values.length, random)) pool[k++] = values[i];
  } else {
    pool = values.slice();
  }
  pool.sort();
  return quantilePositions(pool.length, qs).map((r) => pool[r]);
}

/** mergekit's fusion threshold median + 1.5·IQR from the quantiles [0.5, 0.25, 0.75]. */
const QS = [0.5, 0.25, 0.75];
function thresholdOf([median, q1, q3]: readonly number[]): number {
  return f32(median + f32(1.5 * f32(q3 - q1)));
}

/**
 * A uint32 key per fp32 value that orders like Float32Array's sort: negatives (and −0) below +0,
 * every NaN last.
 */
function orderKey(bits: number, v: number): number {
  if (v !== v) return 0xffffffff;
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}
function valueOfKey(key: number): number {
  const b = new Uint32Array(1);
  b[0] = key & 0x80000000 ? key & 0x7fffffff : ~key;
  return new Float32Array(b.buffer)[0];
}

class FusionStream implements TensorStream {
  private readonly hi = new Uint32Array(65536);
  /** Per quantile position: its high bucket and how many pooled keys lie below that bucket. */
  private buckets: { hi: number; below: number }[] = [];
  private readonly lo = new Map<number, Uint32Array>();
  private threshold = 0;
  /** Sorted sampled indices (tensors over SAMPLE elements), and the next one to look at. */
  private picked?: Float64Array;
  private cursor = 0;
  private importance = new Float32Array(0);
  private out = new Float32Array(0);
  constructor(
    private readonly numel: number,
    private readonly len: number,
    private readonly lone: boolean,
  ) {}

  needsPass(pass: number): boolean {
    if (this.lone) return false;
    this.cursor = 0;
    if (pass === 1) {
      const positions = quantilePositions(Math.min(this.numel, SAMPLE), QS);
      this.buckets = positions.map((r) => {
        let below = 0;
        let hi = 0;
        while (below + this.hi[hi] <= r) below += this.hi[hi++];
        if (!this.lo.has(hi)) this.lo.set(hi, new Uint32Array(65536));
        return { hi, below };
      });
    } else if (pass === 2) {
      const positions = quantilePositions(Math.min(this.numel, SAMPLE), QS);
      this.threshold = thresholdOf(
        positions.map((r, j) => {
          const { hi, below } = this.buckets[j];
          const h = this.lo.get(hi)!;
          let acc = below;
          let lo = 0;
          while (acc + h[lo] <= r) acc += h[lo++];
          return valueOfKey(((hi << 16) | lo) >>> 0);
        }),
      );
    }
    return pass < 2;
  }

  private importanceOf(chunk: StreamChunk): { x: Float32Array; base: Float32Array; importance: Float32Array } {
    const c = chunk.ctx;
    const base = c.inputs[c.baseIndex].data;
    const x = c.inputs[1 - c.baseIndex].data;
    if (this.importance.length < base.length) this.importance = new Float32Array(base.length);
    return { x, base, importance: importanceOf(x, base, this.len, this.importance.subarray(0, base.length)) };
  }

  stats(pass: number, chunk: StreamChunk): void {
    if (pass === 0 && chunk.start === 0 && this.numel > SAMPLE) {
      // the whole-tensor merge's sample: draws 0… of stream 0, which the first chunk's generator starts at
      this.picked = Float64Array.from(sampleIndices(this.numel, chunk.ctx.random(0))).sort();
    }
    const imp = this.importanceOf(chunk).importance;
    const bits = new Uint32Array(imp.buffer, imp.byteOffset, imp.length);
    const picked = this.picked;
    if (!picked) {
      for (let k = 0; k < imp.length; k++) this.count(pass, orderKey(bits[k], imp[k]));
      return;
    }
    const end = chunk.start + imp.length;
    for (; this.cursor < picked.length && picked[this.cursor] < end; this.cursor++) {
      const k = picked[this.cursor] - chunk.start;
      this.count(pass, orderKey(bits[k], imp[k]));
    }
  }

  /** Pass 0: the high-16-bit histogram; pass 1: the low 16 bits within the selected buckets. */
  private count(pass: number, key: number): void {
    if (pass === 0) {
      this.hi[key >>> 16]++;
      return;
    }
    const h = this.lo.get(key >>> 16);
    if (h) h[key & 0xffff]++;
  }

  apply(chunk: StreamChunk): Float32Array {
    const c = chunk.ctx;
    if (this.lone) return Float32Array.from(c.inputs[0].data);
    const { x, base, importance } = this.importanceOf(chunk);
    if (this.out.length < base.length) this.out = new Float32Array(base.length);
    return fuse(x, base, importance, this.threshold, this.out.subarray(0, base.length));
  }
}

export const arceeFusion = defineMergeMethod({
  name: "arcee_fusion",
  reference: "https://arcee.ai",
  params: {},
  modelParams: {},
  base: "required",
  check: validate,
  streaming(info: StreamInfo) {
    validate(info);
    // A 1-D tensor is one softmax row across every chunk (and norm-sized in practice): merged whole.
    if (info.shape.length < 2 || info.numel === 0) return undefined;
    return new FusionStream(info.numel, info.shape[info.shape.length - 1], info.inputs.length === 1);
  },
  merge(ctx) {
    validate(ctx);
    const base = ctx.inputs[ctx.baseIndex].data;
    if (ctx.inputs.length === 1) return Float32Array.from(base);
    const x = ctx.inputs[1 - ctx.baseIndex].data;
    const n = base.length;
    const len = ctx.shape.length >= 1 ? ctx.shape[ctx.shape.length - 1] : n;
    const importance = len === 0 ? new Float32Array(0) : importanceOf(x, base, len, new Float32Array(n));
    const threshold = thresholdOf(quantiles(importance, QS, ctx.random(0)));
    return fuse(x, base, importance, threshold, new Float32Array(n));
  },
});
