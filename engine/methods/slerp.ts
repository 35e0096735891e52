/**
 * slerp: spherical interpolation between the base (t = 0) and the one other model (t = 1), the
 * whole tensor taken as one vector. Nearly colinear tensors (|cos| > 0.9995) are lerped.
 *
 * Numerics: mergekit runs this in numpy fp32. Norms and the dot product are accumulated in
 * float64 and rounded to fp32; the angle and coefficients are computed from those and rounded to
 * fp32 too, so the lerp/slerp branch is taken on the same fp32 cosine mergekit sees (up to its
 * own summation rounding). Each output element is rounded once.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, type MergeContext, type StreamChunk, type TensorStream } from "./define-merge-method.js";
import { num } from "./params.js";
import { numelOf } from "@mergeloom/proto/dtype";
import { kernelArena } from "../kernels/wasm-kernels.js";

const DOT_THRESHOLD = 0.9995;
const NORM_EPS = 1e-8;
const f32 = Math.fround;

function validate(ctx: Pick<MergeContext, "tensorName" | "baseIndex" | "params"> & { inputs: readonly unknown[] }): void {
  if (typeof ctx.params.t !== "number") throw new ParamError(`merge ${ctx.tensorName} with slerp: parameter t is required; set t (0 = base, 1 = other model)`);
  if (ctx.inputs.length === 1) return; // mergekit passes a lone tensor through
  if (ctx.inputs.length !== 2) {
    throw new ParamError(`merge ${ctx.tensorName} with slerp: expects exactly two models (the base and one other), got ${ctx.inputs.length}`);
  }
  if (ctx.baseIndex < 0)
    throw new ParamError(`merge ${ctx.tensorName} with slerp: base model is not among the inputs; set base_model to one of the two models`);
}

/** Spherical interpolation of v0 → v1 exactly as mergekit's numpy `slerp` (fp32). */
export function slerpVectors(t: number, v0: Float32Array, v1: Float32Array): Float32Array {
  const n = v0.length;
  const norms = addSquares(v0, v1, { s00: 0, s11: 0 });
  const [d0, d1] = slerpDivisors(norms.s00, norms.s11);
  const [c0, c1] = slerpCoefficients(t, addDot(v0, v1, d0, d1, 0));
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = c0 * v0[k] + c1 * v1[k];
  return out;
}

/** Running Σv0², Σv1² in float64, in index order (chunks continue the whole-vector sum). */
function addSquares(v0: Float32Array, v1: Float32Array, s: { s00: number; s11: number }): { s00: number; s11: number } {
  let s00 = s.s00;
  let s11 = s.s11;
  for (let k = 0; k < v0.length; k++) {
    s00 += v0[k] * v0[k];
    s11 += v1[k] * v1[k];
  }
  return { s00, s11 };
}

/** The fp32 norms, with mergekit's "≤ eps divides by 1". */
function slerpDivisors(s00: number, s11: number): [number, number] {
  const n0 = f32(Math.sqrt(s00));
  const n1 = f32(Math.sqrt(s11));
  return [n0 > NORM_EPS ? n0 : 1, n1 > NORM_EPS ? n1 : 1];
}

/** Running Σ fp32(v0/d0)·fp32(v1/d1) in float64, in index order. */
function addDot(v0: Float32Array, v1: Float32Array, d0: number, d1: number, dot: number): number {
  for (let k = 0; k < v0.length; k++) dot += f32(v0[k] / d0) * f32(v1[k] / d1);
  return dot;
}

function slerpCoefficients(t: number, dot: number): [number, number] {
  const cos = f32(dot);
  if (Math.abs(cos) > DOT_THRESHOLD) return [f32(1 - t), f32(t)];
  const theta0 = f32(Math.acos(cos));
  const sinTheta0 = f32(Math.sin(theta0));
  const thetaT = f32(theta0 * t);
  return [f32(f32(Math.sin(f32(theta0 - thetaT))) / sinTheta0), f32(f32(Math.sin(thetaT)) / sinTheta0)];
}

/**
 * Streaming slerp: pass 0 the squared norms, pass 1 the normalized dot, then the blend. Raw bf16
 * chunks (arena offsets) go through the SIMD kernels, which do the same float64 sums in the same
 * order and the same per-element arithmetic.
 */
class SlerpStream implements TensorStream {
  private norms = { s00: 0, s11: 0 };
  private div: [number, number] = [1, 1];
  private dot = 0;
  private coef: [number, number] = [1, 0];
  private out = new Float32Array(0);
  /** Arena offset of the raw path's [s00, s11] (float64), allocated on its first chunk. */
  private sumsAt = -1;
  readonly rawBF16: boolean;
  constructor(
    private readonly t: number,
    private readonly lone: boolean,
  ) {
    this.rawBF16 = !lone;
  }
  needsPass(pass: number): boolean {
    if (this.lone) return false;
    if (pass === 1) {
      if (this.sumsAt >= 0) [this.norms.s00, this.norms.s11] = kernelArena().f64(this.sumsAt, 2);
      this.div = slerpDivisors(this.norms.s00, this.norms.s11);
    }
    if (pass === 2) this.coef = slerpCoefficients(this.t, this.dot);
    return pass < 2;
  }
  private pair(chunk: StreamChunk): [Float32Array, Float32Array] {
    const c = chunk.ctx;
    return [c.inputs[c.baseIndex].data, c.inputs[1 - c.baseIndex].data];
  }
  /** Arena offsets of the base's and the other model's bf16 rows. */
  private rawPair(chunk: StreamChunk, raw: readonly number[]): [number, number, number] {
    const c = chunk.ctx;
    return [raw[c.baseIndex], raw[1 - c.baseIndex], numelOf(c.shape)];
  }
  stats(pass: number, chunk: StreamChunk): void {
    if (chunk.bf16) {
      const [x0, x1, n] = this.rawPair(chunk, chunk.bf16);
      const a = kernelArena();
      if (pass === 0) {
        if (this.sumsAt < 0) a.f64((this.sumsAt = a.alloc(16)), 2).fill(0);
        a.k.sumSquaresBF16(x0, x1, n, this.sumsAt);
      } else this.dot = a.k.dotScaledBF16(x0, x1, n, this.div[0], this.div[1], this.dot);
      return;
    }
    const [v0, v1] = this.pair(chunk);
    if (pass === 0) this.norms = addSquares(v0, v1, this.norms);
    else this.dot = addDot(v0, v1, this.div[0], this.div[1], this.dot);
  }
  apply(chunk: StreamChunk): Float32Array {
    if (this.lone) return Float32Array.from(chunk.ctx.inputs[0].data);
    if (chunk.bf16) {
      const [x0, x1, n] = this.rawPair(chunk, chunk.bf16);
      const a = kernelArena();
      const mark = a.mark();
      const at = a.alloc(4 * n);
      a.k.blendBF16(at, x0, x1, n, this.coef[0], this.coef[1], 1);
      const out = Float32Array.from(a.f32(at, n));
      a.release(mark);
      return out;
    }
    const [v0, v1] = this.pair(chunk);
    const n = v0.length;
    if (this.out.length < n) this.out = new Float32Array(n);
    const out = this.out.subarray(0, n);
    const [c0, c1] = this.coef;
    for (let k = 0; k < n; k++) out[k] = c0 * v0[k] + c1 * v1[k];
    return out;
  }
  applyBF16(chunk: StreamChunk, out: number): void {
    if (!chunk.bf16) throw new Error("slerp applyBF16: the chunk has no raw bf16 inputs");
    const [x0, x1, n] = this.rawPair(chunk, chunk.bf16);
    kernelArena().k.blendBF16(out, x0, x1, n, this.coef[0], this.coef[1], 0);
  }
}

export const slerp = defineMergeMethod({
  name: "slerp",
  reference: "https://en.wikipedia.org/wiki/Slerp",
  params: { t: num() },
  modelParams: {},
  base: "required",
  check: validate,
  streaming(info) {
    validate(info);
    return new SlerpStream(info.params.t as number, info.inputs.length === 1);
  },
  merge(ctx) {
    validate(ctx);
    if (ctx.inputs.length === 1) return Float32Array.from(ctx.inputs[0].data);
    const base = ctx.inputs[ctx.baseIndex].data;
    const other = ctx.inputs[1 - ctx.baseIndex].data;
    return slerpVectors(ctx.params.t as number, base, other);
  },
});
