/**
 * model_stock: interpolates between the base and the average of the other models with
 * t = N·cos/(1 + (N−1)·cos), where cos is the mean pairwise cosine of the task vectors, over the
 * whole tensor or, with `filter_wise`, per row (vectors along the last dim; a 1-D tensor is one
 * row). t is not clamped, as in mergekit.
 *
 * Numerics: mergekit computes in torch fp32. Norms and dot products are accumulated in float64
 * and rounded to fp32, t is computed in fp32, and each output element is rounded once.
 *
 * Streaming: every sum runs in element order in float64, so it continues across row chunks. The
 * whole-tensor mode takes one stats pass (norms and dots) before the blend; filter_wise rows of
 * a ≥ 2-D tensor lie inside a chunk and need none. `merge` is the stream over one chunk.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, mergeFromStream, type MergeContext, type StreamChunk, type TensorStream } from "./define-merge-method.js";
import { bool } from "./params.js";

const f32 = Math.fround;

function validate(ctx: Pick<MergeContext, "tensorName" | "baseIndex"> & { inputs: readonly unknown[] }): void {
  if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with model_stock: a base model is required; set base_model`);
  if (ctx.inputs.length === 1) return; // only the base: passed through
  if (ctx.inputs.length < 3) {
    throw new ParamError(`merge ${ctx.tensorName} with model_stock: requires at least 3 models (the base plus two or more others), got ${ctx.inputs.length}`);
  }
}

/** Running Σo_i² and Σo_i·o_k (i < k) in float64 of the offsets o_i = fp32(X_i − B), in element order. */
class OffsetSums {
  readonly sq: Float64Array;
  readonly dot: Float64Array;
  private readonly o: Float64Array;
  constructor(private readonly N: number) {
    this.sq = new Float64Array(N);
    this.dot = new Float64Array((N * (N - 1)) / 2);
    this.o = new Float64Array(N);
  }
  reset(): void {
    this.sq.fill(0);
    this.dot.fill(0);
  }
  add(ws: readonly Float32Array[], base: Float32Array, lo: number, hi: number): void {
    const { N, o, sq, dot } = this;
    for (let j = lo; j < hi; j++) {
      for (let i = 0; i < N; i++) {
        o[i] = f32(ws[i][j] - base[j]);
        sq[i] += o[i] * o[i];
      }
      for (let i = 0, p = 0; i < N; i++) for (let k = i + 1; k < N; k++) dot[p++] += o[i] * o[k];
    }
  }
  /** t = N·cos/(1 + (N−1)·cos) from the mean clamped pairwise cosine, in fp32 as mergekit. */
  t(): number {
    const N = this.N;
    const norms = Array.from(this.sq, (q) => f32(Math.sqrt(q)));
    let cosSum = 0;
    for (let i = 0, p = 0; i < N; i++) {
      for (let k = i + 1; k < N; k++, p++) {
        const c = f32(f32(this.dot[p]) / Math.max(f32(norms[i] * norms[k]), 1e-6));
        cosSum += Math.min(1, Math.max(-1, c));
      }
    }
    const cos = f32(cosSum / this.dot.length);
    return f32(f32(N * cos) / f32(1 + f32((N - 1) * cos)));
  }
}

/** out[j] = t·mean_i(X_i[j]) + (1 − t)·B[j] for j in [lo, hi). */
function blend(ws: readonly Float32Array[], base: Float32Array, lo: number, hi: number, t: number, out: Float32Array): void {
  const N = ws.length;
  const u = f32(1 - t);
  for (let j = lo; j < hi; j++) {
    let sum = 0;
    for (let i = 0; i < N; i++) sum += ws[i][j];
    out[j] = t * f32(sum / N) + u * base[j];
  }
}

/**
 * `rowLen` > 0: filter_wise rows of that length, each merged inside the chunk holding it;
 * 0: one t for the whole tensor, from a stats pass.
 */
class ModelStockStream implements TensorStream {
  private readonly sums: OffsetSums;
  private t = 0;
  private out = new Float32Array(0);
  constructor(
    N: number,
    private readonly rowLen: number,
  ) {
    this.sums = new OffsetSums(N);
  }
  needsPass(pass: number): boolean {
    if (this.rowLen > 0) return false;
    if (pass === 1) this.t = this.sums.t();
    return pass < 1;
  }
  stats(_pass: number, chunk: StreamChunk): void {
    const [ws, base] = split(chunk);
    this.sums.add(ws, base, 0, base.length);
  }
  apply(chunk: StreamChunk): Float32Array {
    const [ws, base] = split(chunk);
    const n = base.length;
    if (this.out.length < n) this.out = new Float32Array(n);
    const out = this.out.subarray(0, n);
    if (this.rowLen === 0) {
      blend(ws, base, 0, n, this.t, out);
      return out;
    }
    for (let s = 0; s < n; s += this.rowLen) {
      this.sums.reset();
      this.sums.add(ws, base, s, s + this.rowLen);
      blend(ws, base, s, s + this.rowLen, this.sums.t(), out);
    }
    return out;
  }
}

function split(chunk: StreamChunk): [Float32Array[], Float32Array] {
  const c = chunk.ctx;
  return [c.inputs.filter((_, i) => i !== c.baseIndex).map((i) => i.data), c.inputs[c.baseIndex].data];
}

/** The lone base, copied chunk by chunk. */
const passThrough: TensorStream = {
  needsPass: () => false,
  stats() {},
  apply: (chunk) => Float32Array.from(chunk.ctx.inputs[0].data),
};

function streamFor(ctx: Pick<MergeContext, "tensorName" | "baseIndex" | "params" | "shape"> & { inputs: readonly unknown[] }): TensorStream {
  validate(ctx);
  if (ctx.inputs.length === 1) return passThrough;
  // filter_wise on a 1-D (or 0-D) tensor is one row: the whole-tensor mode.
  const perRow = ctx.params.filter_wise === true && ctx.shape.length >= 2;
  return new ModelStockStream(ctx.inputs.length - 1, perRow ? ctx.shape[ctx.shape.length - 1] : 0);
}

export const modelStock = defineMergeMethod({
  name: "model_stock",
  reference: "https://arxiv.org/abs/2403.19522",
  params: { filter_wise: bool(false) },
  modelParams: {},
  base: "required",
  check: validate,
  streaming: streamFor,
  merge: mergeFromStream(streamFor),
});
