/**
 * sce (Select, Calculate, Erase): task vectors τ_i = X_i − B; with select_topk < 1 only the
 * entries with the largest variance across models are kept (in every τ_i); a TIES sign election
 * (sum rule, ties → +) erases disagreeing entries; the survivors are averaged with one weight per
 * model, s_i ∝ mean(τ_i²). Per-model weights are not used (mergekit has none for sce).
 *
 * Numerics: mergekit computes in torch fp32. Variances and the per-model mean squares are
 * accumulated in float64 and rounded to fp32; each output element is rounded once. Among entries
 * of equal variance at the top-k cut, the lower index is kept (torch.topk leaves it unspecified).
 *
 * Streaming: with select_topk < 1, pass 0 counts the nonzero variances and builds a histogram of
 * the high 16 bits of their float bits, pass 1 of the low 16 bits in the cut's bucket: the exact
 * cut value the sort finds, with how many variances lie above it and equal it. The mask is then
 * applied in flat order with a running count of the ties still to keep, as `selectMask` does.
 * The mean squares of the masked τ_i are float64 sums in flat order (one more pass).
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, dropAllButBase, type DroppedInput, type StreamChunk, type StreamInfo, type TensorStream } from "./define-merge-method.js";
import { bool, num, type ResolvedParams } from "./params.js";

const f32 = Math.fround;

function validate(ctx: { tensorName: string; baseIndex: number }): void {
  if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with sce: a base model is required; set base_model`);
}
/**
 * select_topk keeps k = int(count_nonzero(var)·select_topk) entries; when even int(numel·topk) is
 * 0 (select_topk 0, or a small tensor) the mask is empty and every task vector is erased.
 */
function droppedInputs(ctx: { shape: readonly number[]; baseIndex: number; params: ResolvedParams; inputs: readonly unknown[] }): DroppedInput[] {
  const topk = topkOf(ctx.params);
  const numel = ctx.shape.reduce((a, b) => a * b, 1);
  if (!(topk < 1) || Math.trunc(numel * topk) > 0) return [];
  return dropAllButBase(ctx, {
    param: "select_topk",
    why: `select_topk ${topk} keeps int(count_nonzero(variance)·select_topk) = 0 of ${numel} entries, so sce erases every task vector`,
    fix: "use a select_topk with select_topk·numel ≥ 1 (1 keeps every entry)",
  });
}
function topkOf(params: ResolvedParams): number {
  return typeof params.select_topk === "number" ? params.select_topk : 1;
}

/** τ_i = fp32(X_i − B) into `out`. */
function deltaOf(x: Float32Array, base: Float32Array, out: Float32Array): Float32Array {
  for (let k = 0; k < out.length; k++) out[k] = x[k] - base[k];
  return out;
}

/** Population variance over the models of every entry (fp32); returns how many are nonzero. */
function varianceOf(tv: readonly Float32Array[], variance: Float32Array): number {
  const N = tv.length;
  let nonzero = 0;
  for (let k = 0; k < variance.length; k++) {
    let m = 0;
    for (let i = 0; i < N; i++) m += tv[i][k];
    m = f32(m / N);
    let v = 0;
    for (let i = 0; i < N; i++) v += (tv[i][k] - m) ** 2;
    variance[k] = v / N;
    if (variance[k] !== 0) nonzero++;
  }
  return nonzero;
}

/** Mask of the k = int(count_nonzero(var)·topk) entries with the largest population variance. */
function selectMask(tv: readonly Float32Array[], topk: number): Uint8Array | null {
  const n = tv[0].length;
  if (topk >= 1) return null;
  const mask = new Uint8Array(n);
  if (topk <= 0) return mask;
  const variance = new Float32Array(n);
  const nonzero = varianceOf(tv, variance);
  const kept = Math.trunc(nonzero * topk);
  if (kept === 0) return mask;
  // The cut value by a native numeric sort; entries above it are kept, ties at it by index.
  const cut = variance.slice().sort()[n - kept];
  let taken = 0;
  for (let k = 0; k < n; k++) {
    if (variance[k] > cut) {
      mask[k] = 1;
      taken++;
    }
  }
  for (let k = 0; k < n && taken < kept; k++) {
    if (variance[k] === cut) {
      mask[k] = 1;
      taken++;
    }
  }
  return mask;
}

/** s + Σ d[k]² in float64, in index order. */
function addSquares(d: Float32Array, s: number): number {
  for (let k = 0; k < d.length; k++) s += d[k] * d[k];
  return s;
}

/** s_i = mean(τ_i²) / Σ_j mean(τ_j²), uniform when the sum is ~0 (from the Σ τ_i² over all n entries). */
function matrixWeights(sumSquares: readonly number[], n: number): number[] {
  const N = sumSquares.length;
  const ms = sumSquares.map((q) => f32(q / Math.max(n, 1)));
  const msSum = f32(ms.reduce((a, b) => a + b, 0));
  return Math.abs(msSum) < 1e-6 ? ms.map(() => f32(1 / N)) : ms.map((m) => f32(m / msSum));
}

/** B + Σ s_i·mask_i·τ_i / max(Σ s_i·mask_i, 1e-6), with the sign election on the unweighted τ. */
function combine(base: Float32Array, tv: readonly Float32Array[], s: readonly number[], out: Float32Array): Float32Array {
  const N = tv.length;
  for (let k = 0; k < out.length; k++) {
    let sum = 0;
    for (let i = 0; i < N; i++) sum += tv[i][k];
    const maj = sum >= 0 ? 1 : -1;
    let num = 0;
    let den = 0;
    for (let i = 0; i < N; i++) {
      const x = tv[i][k];
      if (Math.sign(x) === maj) {
        num += s[i] * x;
        den += s[i];
      }
    }
    out[k] = base[k] + f32(num / Math.max(f32(den), 1e-6));
  }
  return out;
}

/** One fp32 scratch buffer per slot, grown on demand. */
class Buffers {
  private f: Float32Array[] = [];
  get(i: number, n: number): Float32Array {
    if (!this.f[i] || this.f[i].length < n) this.f[i] = new Float32Array(n);
    return this.f[i].subarray(0, n);
  }
}

/** Exponent-and-above float bits: a variance key above this is NaN, which `>` never keeps. */
const INF_BITS = 0x7f800000;

class SceStream implements TensorStream {
  private readonly bufs = new Buffers();
  /** "all": no selection; "none": nothing selected; "select": the top-k cut. */
  private select: "all" | "none" | "select";
  private nonzero = 0;
  private nan = 0;
  private hi?: Uint32Array;
  private lo?: Uint32Array;
  private hiBucket = 0;
  private belowHi = 0;
  private cutKey = 0;
  /** Ties at the cut still to keep in this pass, and the count at a pass's start. */
  private tiesLeft = 0;
  private ties = 0;
  private sums: number[];
  private weights: number[];
  constructor(
    private readonly numel: number,
    private readonly others: readonly number[],
    private readonly baseIndex: number,
    private readonly topk: number,
  ) {
    this.select = topk >= 1 ? "all" : topk <= 0 ? "none" : "select";
    this.sums = others.map(() => 0);
    this.weights = matrixWeights(this.sums, numel);
  }

  private kept(): number {
    return Math.trunc(this.nonzero * this.topk);
  }

  /**
   * Passes: "all" — 0: Σ τ²; "select" — 0: nonzero count and high histogram, 1: low histogram,
   * 2: Σ τ² of the masked τ. "none" (or nothing kept) zeroes every τ, so the weights are uniform.
   */
  needsPass(pass: number): boolean {
    if (this.others.length === 0 || this.select === "none") return false;
    this.tiesLeft = this.ties;
    if (this.select === "all") {
      if (pass === 1) this.weights = matrixWeights(this.sums, this.numel);
      return pass === 0;
    }
    if (pass === 0) this.hi = new Uint32Array(65536);
    if (pass === 1) {
      const kept = this.kept();
      if (!(kept > 0)) {
        this.select = "none";
        return false;
      }
      const r = this.numel - kept;
      const h = this.hi!;
      let acc = 0;
      let hi = 0;
      while (acc + h[hi] <= r) acc += h[hi++];
      this.hiBucket = hi;
      this.belowHi = acc;
      this.hi = undefined;
      this.lo = new Uint32Array(65536);
    }
    if (pass === 2) {
      const h = this.lo!;
      const rr = this.numel - this.kept() - this.belowHi;
      let acc = 0;
      let lo = 0;
      while (acc + h[lo] <= rr) acc += h[lo++];
      this.cutKey = ((this.hiBucket << 16) | lo) >>> 0;
      this.lo = undefined;
      if (this.cutKey > INF_BITS) {
        this.select = "none"; // the cut is NaN: no variance compares above or equal to it
        return false;
      }
      const below = this.belowHi + acc;
      const above = this.numel - below - h[lo] - this.nan; // NaN keys sort above but are never kept
      this.tiesLeft = this.ties = this.kept() - above;
    }
    if (pass === 3) this.weights = matrixWeights(this.sums, this.numel);
    return pass < 3;
  }

  /** The chunk's τ_i, masked as the whole-tensor selection masks them. */
  private deltas(chunk: StreamChunk): { base: Float32Array; tv: Float32Array[] } {
    const inputs = chunk.ctx.inputs;
    const base = inputs[this.baseIndex].data;
    const n = base.length;
    const tv = this.others.map((i, j) => deltaOf(inputs[i].data, base, this.bufs.get(2 + j, n)));
    if (this.select === "none") for (const d of tv) d.fill(0);
    else if (this.select === "select") {
      const variance = this.bufs.get(1, n);
      varianceOf(tv, variance);
      const bits = new Uint32Array(variance.buffer, variance.byteOffset, n);
      const cut = this.cutKey;
      let tiesLeft = this.tiesLeft;
      for (let k = 0; k < n; k++) {
        const b = bits[k] & 0x7fffffff;
        let keep = b > cut && b <= INF_BITS;
        if (b === cut) keep = tiesLeft-- > 0;
        if (!keep) for (const d of tv) d[k] = 0;
      }
      this.tiesLeft = tiesLeft;
    }
    return { base, tv };
  }

  stats(pass: number, chunk: StreamChunk): void {
    if (this.select === "select" && pass < 2) {
      const inputs = chunk.ctx.inputs;
      const base = inputs[this.baseIndex].data;
      const n = base.length;
      const tv = this.others.map((i, j) => deltaOf(inputs[i].data, base, this.bufs.get(2 + j, n)));
      const variance = this.bufs.get(1, n);
      const nonzero = varianceOf(tv, variance);
      const bits = new Uint32Array(variance.buffer, variance.byteOffset, n);
      if (pass === 0) {
        this.nonzero += nonzero;
        const h = this.hi!;
        for (let k = 0; k < n; k++) {
          const b = bits[k] & 0x7fffffff;
          h[b >>> 16]++;
          if (b > INF_BITS) this.nan++;
        }
      } else {
        const h = this.lo!;
        const hi = this.hiBucket;
        for (let k = 0; k < n; k++) {
          const b = bits[k] & 0x7fffffff;
          if (b >>> 16 === hi) h[b & 0xffff]++;
        }
      }
      return;
    }
    const { tv } = this.deltas(chunk);
    tv.forEach((d, j) => (this.sums[j] = addSquares(d, this.sums[j])));
  }

  apply(chunk: StreamChunk): Float32Array {
    if (this.others.length === 0) return Float32Array.from(chunk.ctx.inputs[this.baseIndex].data);
    const { base, tv } = this.deltas(chunk);
    return combine(base, tv, this.weights, this.bufs.get(0, base.length));
  }
}

export const sce = defineMergeMethod({
  name: "sce",
  reference: "https://arxiv.org/abs/2408.07990",
  params: { int8_mask: bool(false), select_topk: num(1.0) },
  modelParams: {},
  base: "required",
  check: validate,
  droppedInputs,
  streaming(info: StreamInfo) {
    validate(info);
    const others = info.inputs.map((_, i) => i).filter((i) => i !== info.baseIndex);
    return new SceStream(info.numel, others, info.baseIndex, topkOf(info.params));
  },
  merge(ctx) {
    validate(ctx);
    const base = ctx.inputs[ctx.baseIndex].data;
    const others = ctx.inputs.filter((_, i) => i !== ctx.baseIndex).map((i) => i.data);
    if (others.length === 0) return Float32Array.from(base);
    const n = base.length;
    const tv = others.map((x) => deltaOf(x, base, new Float32Array(n)));
    const mask = selectMask(tv, topkOf(ctx.params));
    if (mask) for (const d of tv) for (let k = 0; k < n; k++) if (!mask[k]) d[k] = 0;
    const s = matrixWeights(
      tv.map((d) => addSquares(d, 0)),
      n,
    );
    return combine(base, tv, s, new Float32Array(n));
  },
});
