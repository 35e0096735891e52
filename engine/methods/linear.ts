/**
 * linear: Σ w_i·X_i, divided by Σ w_i when `normalize` (default true). Every input takes part,
 * the base included when the config sets one (mergekit appends it as an ordinary source).
 *
 * Numerics are mergekit's fp32 ones: weights rounded to fp32 (it builds an fp32 weight tensor),
 * each product w_i·x_i rounded to fp32 and summed in fp32 in input order, then divided by the fp32
 * sum of the weights (`(weights * tensors).sum(0) / weights.sum(0)`).
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, type MergeInput, type StreamChunk, type TensorStream } from "./define-merge-method.js";
import { kernelArena } from "../kernels/wasm-kernels.js";
import { bool, num } from "./params.js";

/** Weights with |Σw| below this count as summing to zero (mergekit would divide by ~0). */
const ZERO_SUM = 1e-8;

function weightsOf(tensorName: string, inputs: readonly Pick<MergeInput, "model" | "params">[]): number[] {
  if (inputs.length === 0) throw new ParamError(`merge ${tensorName} with linear: no input models`);
  return inputs.map((inp) => {
    const w = inp.params.weight;
    if (typeof w !== "number") {
      throw new ParamError(
        `merge ${tensorName} with linear: model '${inp.model}' has no weight; add a weight for it (parameters: {weight: ...} under that model, or a top-level weight)`,
      );
    }
    return Math.fround(w);
  });
}

function checkSum(tensorName: string, weights: readonly number[], normalize: boolean): void {
  if (!normalize) return;
  const sum = divisorOf(weights, true);
  if (!(Math.abs(sum) >= ZERO_SUM)) {
    throw new ParamError(
      `merge ${tensorName} with linear: weights sum to ${sum} with normalize: true, so the result would be inf/nan; change the weights or set normalize: false`,
    );
  }
}

export const linear = defineMergeMethod({
  name: "linear",
  reference: "https://arxiv.org/abs/2203.05482",
  params: { normalize: bool(true) },
  modelParams: { weight: num() },
  base: "none",
  elementwise: true,
  check(ctx) {
    checkSum(ctx.tensorName, weightsOf(ctx.tensorName, ctx.inputs), ctx.params.normalize !== false);
  },
  merge(ctx) {
    const weights = weightsOf(ctx.tensorName, ctx.inputs);
    const normalize = ctx.params.normalize !== false;
    checkSum(ctx.tensorName, weights, normalize);
    return linearValues(ctx.inputs, weights, divisorOf(weights, normalize));
  },
  streaming(info) {
    const weights = weightsOf(info.tensorName, info.inputs);
    const normalize = info.params.normalize !== false;
    checkSum(info.tensorName, weights, normalize);
    return new LinearStream(weights, divisorOf(weights, normalize));
  },
});

function linearValues(inputs: readonly Pick<MergeInput, "data">[], weights: readonly number[], div: number): Float32Array {
  const n = inputs[0].data.length;
  const out = new Float32Array(n);
  const x0 = inputs[0].data;
  const w0 = weights[0];
  for (let k = 0; k < n; k++) out[k] = w0 * x0[k];
  for (let m = 1; m < inputs.length; m++) {
    const x = inputs[m].data;
    const w = weights[m];
    for (let k = 0; k < n; k++) out[k] += Math.fround(w * x[k]);
  }
  if (div !== 1) for (let k = 0; k < n; k++) out[k] /= div;
  return out;
}

/**
 * linear needs no statistics: one apply pass, straight from raw bf16 to bf16 in the SIMD kernel
 * when the driver hands raw chunks (the common bf16 checkpoint), else from fp32 like `merge`.
 */
class LinearStream implements TensorStream {
  readonly rawBF16 = true;
  constructor(
    private readonly weights: readonly number[],
    private readonly div: number,
  ) {}
  needsPass(): boolean {
    return false;
  }
  stats(): void {}
  apply(chunk: StreamChunk): Float32Array {
    return linearValues(chunk.ctx.inputs, this.weights, this.div);
  }
  applyBF16(chunk: StreamChunk, out: number): void {
    let n = 1;
    for (const d of chunk.ctx.shape) n *= d;
    linearBF16Kernel(chunk.bf16!, this.weights, this.div, out, n);
  }
}

/** Σw summed in fp32 in input order when normalizing, else 1: the divisor of every output. */
function divisorOf(weights: readonly number[], normalize: boolean): number {
  if (!normalize) return 1;
  let s = 0;
  for (const w of weights) s = Math.fround(s + w);
  return s;
}

type LinearCtx = { tensorName: string; inputs: readonly Pick<MergeInput, "model" | "params">[]; params: Record<string, unknown> };

/**
 * linear straight from bf16 bits to bf16 bits in the kernel arena (`srcs`, `out`: byte offsets of
 * n elements each): the same fp32 products, sums in the same order, division and round-to-nearest-
 * even to bf16 as `merge` + the driver's conversions, so the bytes are identical (SIMD kernel
 * `linearBF16`).
 */
export function linearBF16At(ctx: LinearCtx, srcs: readonly number[], out: number, n: number): void {
  const weights = weightsOf(ctx.tensorName, ctx.inputs);
  const normalize = ctx.params.normalize !== false;
  checkSum(ctx.tensorName, weights, normalize);
  linearBF16Kernel(srcs, weights, divisorOf(weights, normalize), out, n);
}

function linearBF16Kernel(srcs: readonly number[], weights: readonly number[], div: number, out: number, n: number): void {
  const a = kernelArena();
  const mark = a.mark();
  const m = srcs.length;
  const sp = a.alloc(4 * m);
  const wp = a.alloc(4 * m);
  a.u32(sp, m).set(srcs);
  a.f32(wp, m).set(weights);
  a.k.linearBF16(out, sp, wp, m, n, div);
  a.release(mark);
}

/** `linearBF16At` on ordinary arrays (copied through the arena). */
export function mergeLinearBF16(ctx: LinearCtx, srcs: readonly Uint16Array[], out: Uint16Array): void {
  const a = kernelArena();
  const mark = a.mark();
  const n = out.length;
  const ptrs = srcs.map((s) => {
    const p = a.alloc(2 * n);
    a.u16(p, n).set(s.subarray(0, n));
    return p;
  });
  const op = a.alloc(2 * n);
  linearBF16At(ctx, ptrs, op, n);
  out.set(a.u16(op, n));
  a.release(mark);
}
