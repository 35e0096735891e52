/**
 * multislerp: barycentric interpolation on the hypersphere. Each (flattened) input, or its task
 * vector when a base is set, is projected to the unit sphere; the weighted mean direction m is
 * found, the points are mapped to the tangent space at m, averaged there, mapped back with the
 * exponential map, and scaled by the weighted mean of the norms.
 *
 * Numerics: mergekit computes in torch fp32. Norms and dot products are accumulated in float64
 * and rounded to fp32; intermediate vectors are kept in float64 and the output rounded once,
 * which differs from mergekit by fp32 rounding. Deliberate difference: weights summing to 0 with
 * normalize_weights are refused (mergekit divides by 0 and writes nan).
 *
 * Streaming: every sum is a float64 sum in element order, and every per-element vector (the
 * points, m, T) is recomputed from the inputs and the scalars found so far, so the four sums —
 * ‖x_i‖², ‖Σ w_i u_i‖², u_i·m, ‖T‖² — take one stats pass each and continue across row chunks.
 * `merge` is the stream over one chunk.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, mergeFromStream, type MergeContext, type MergeInput, type StreamChunk, type TensorStream } from "./define-merge-method.js";
import { bool, num } from "./params.js";

const EPS = 1e-8;
const f32 = Math.fround;

type Ctx = Pick<MergeContext, "tensorName" | "baseIndex" | "params"> & { inputs: readonly Pick<MergeInput, "model" | "params">[] };

/** The non-base inputs and their fp32 weights (normalized when asked). */
function pointsOf(ctx: Ctx): { idx: number[]; w: number[] } {
  const idx = ctx.inputs.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
  if (idx.length === 0) throw new ParamError(`merge ${ctx.tensorName} with multislerp: no models besides the base; list at least one model`);
  const raw = idx.map((i) => {
    const w = ctx.inputs[i].params.weight;
    if (typeof w !== "number")
      throw new ParamError(`merge ${ctx.tensorName} with multislerp: model '${ctx.inputs[i].model}' has no weight; add a weight for it`);
    return f32(w);
  });
  if (ctx.params.normalize_weights === false || idx.length === 1) return { idx, w: raw };
  const sum = f32(raw.reduce((a, b) => a + b, 0));
  if (sum === 0) {
    throw new ParamError(
      `merge ${ctx.tensorName} with multislerp: weights sum to 0 with normalize_weights: true; change the weights or set normalize_weights: false`,
    );
  }
  return { idx, w: raw.map((x) => f32(x / sum)) };
}

/**
 * Pass 0: Σp_i² of the points p_i (exact fp32 differences when based); pass 1: ‖m‖² of
 * m = Σ w_i u_i with u_i = p_i/(‖p_i‖ + eps); pass 2: u_i·m̂; pass 3: ‖T‖² of
 * T = Σ w_i (u_i − (u_i·m̂) m̂); then the output. A zero m ends the passes early: two points fall
 * back to their weighted sum (as mergekit), more are refused.
 */
class MultislerpStream implements TensorStream {
  private readonly N: number;
  private readonly sq: Float64Array;
  private readonly norms: Float64Array;
  private readonly inv: Float64Array;
  private readonly dots: Float64Array;
  private readonly u: Float64Array;
  private mm = 0;
  private meanNorm = 0;
  private tt = 0;
  private fallback = false;
  private cosT = 0;
  private sinRatio = 0;
  private avgNorm = 0;
  private out = new Float32Array(0);
  constructor(
    private readonly tensorName: string,
    private readonly idx: readonly number[],
    private readonly w: readonly number[],
    private readonly eps: number,
  ) {
    this.N = idx.length;
    [this.sq, this.norms, this.inv, this.dots, this.u] = Array.from({ length: 5 }, () => new Float64Array(this.N));
  }
  needsPass(pass: number): boolean {
    const { N, eps } = this;
    if (pass === 1) {
      for (let i = 0; i < N; i++) {
        this.norms[i] = f32(Math.sqrt(this.sq[i]));
        this.inv[i] = f32(this.norms[i] + eps);
      }
    } else if (pass === 2) {
      this.meanNorm = f32(Math.sqrt(this.mm));
      if (this.meanNorm < eps) {
        if (N !== 2) {
          throw new ParamError(
            `merge ${this.tensorName} with multislerp: the weighted sum of the input directions is zero (antipodal inputs with balancing weights); use different weights`,
          );
        }
        this.fallback = true;
        return false;
      }
    } else if (pass === 3) {
      for (let i = 0; i < N; i++) this.dots[i] = f32(this.dots[i]);
    } else if (pass === 4) {
      const tNorm = f32(f32(Math.sqrt(this.tt)) + eps);
      this.cosT = f32(Math.cos(tNorm));
      this.sinRatio = f32(f32(Math.sin(tNorm)) / tNorm);
      let avg = 0;
      for (let i = 0; i < N; i++) avg += this.norms[i] * this.w[i];
      this.avgNorm = f32(avg);
    }
    return pass < 4;
  }
  private inputs(chunk: StreamChunk): [Float32Array[], Float32Array | null] {
    const c = chunk.ctx;
    return [this.idx.map((i) => c.inputs[i].data), c.baseIndex >= 0 ? c.inputs[c.baseIndex].data : null];
  }
  /** u_i of element k into this.u, and m = Σ w_i u_i (summed from 0 in input order). */
  private units(xs: readonly Float32Array[], base: Float32Array | null, k: number): number {
    let m = 0;
    for (let i = 0; i < this.N; i++) {
      const p = base ? f32(xs[i][k] - base[k]) : xs[i][k];
      this.u[i] = p / this.inv[i];
      m += this.w[i] * this.u[i];
    }
    return m;
  }
  /** T = Σ w_i (u_i − dot_i·m̂) of element k, given m̂ and the u_i in this.u. */
  private tangent(mHat: number): number {
    let t = 0;
    for (let i = 0; i < this.N; i++) t += this.w[i] * (this.u[i] - this.dots[i] * mHat);
    return t;
  }
  stats(pass: number, chunk: StreamChunk): void {
    const [xs, base] = this.inputs(chunk);
    const { N, sq, dots } = this;
    const n = xs[0].length;
    for (let k = 0; k < n; k++) {
      if (pass === 0) {
        for (let i = 0; i < N; i++) {
          const p = base ? f32(xs[i][k] - base[k]) : xs[i][k];
          sq[i] += p * p;
        }
        continue;
      }
      const m = this.units(xs, base, k);
      if (pass === 1) {
        this.mm += m * m;
      } else if (pass === 2) {
        const mHat = m / this.meanNorm;
        for (let i = 0; i < N; i++) dots[i] += this.u[i] * mHat; // rounded to fp32 before pass 3
      } else {
        const t = this.tangent(m / this.meanNorm);
        this.tt += t * t;
      }
    }
  }
  apply(chunk: StreamChunk): Float32Array {
    const [xs, base] = this.inputs(chunk);
    const n = xs[0].length;
    if (this.out.length < n) this.out = new Float32Array(n);
    const out = this.out.subarray(0, n);
    const w = this.w;
    for (let k = 0; k < n; k++) {
      const b = base ? base[k] : 0;
      if (this.fallback) {
        out[k] = w[0] * (base ? f32(xs[0][k] - b) : xs[0][k]) + w[1] * (base ? f32(xs[1][k] - b) : xs[1][k]) + b;
        continue;
      }
      const mHat = this.units(xs, base, k) / this.meanNorm;
      const r = f32((mHat * this.cosT + this.tangent(mHat) * this.sinRatio) * this.avgNorm);
      out[k] = base ? b + r : r;
    }
    return out;
  }
}

function streamFor(ctx: Ctx): TensorStream {
  const { idx, w } = pointsOf(ctx);
  // mergekit: a single model is returned as is, base ignored
  if (idx.length === 1) return { needsPass: () => false, stats() {}, apply: (chunk) => Float32Array.from(chunk.ctx.inputs[idx[0]].data) };
  const eps = typeof ctx.params.eps === "number" ? ctx.params.eps : EPS;
  return new MultislerpStream(ctx.tensorName, idx, w, eps);
}

export const multislerp = defineMergeMethod({
  name: "multislerp",
  reference: "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
  params: { normalize_weights: bool(true), eps: num(EPS) },
  modelParams: { weight: num() },
  base: "optional",
  check(ctx) {
    pointsOf(ctx);
  },
  streaming: streamFor,
  merge: mergeFromStream(streamFor),
});
