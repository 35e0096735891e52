/**
 * nuslerp: slerp of exactly two models A, B (config order) at t = w_B/(w_A + w_B) (0.5 when the
 * weights sum to ~0). With a base, the task vectors A − base and B − base are slerped and the
 * base added back. `nuslerp_flatten` (default true) takes the whole tensor as one vector;
 * otherwise each row (vectors along the last dim) is slerped, or each column (vectors along dim 0)
 * with `nuslerp_row_wise: true` (mergekit's naming).
 *
 * Numerics: mergekit computes in torch fp32. Per-vector norms and cosines are accumulated in
 * float64 and rounded to fp32, and the angle terms are rounded to fp32, so the colinear test
 * |sin θ| < 1e-8 sees the same fp32 values as mergekit (e.g. sin(fp32 π) ≈ −8.7e-8 is *not*
 * colinear). Each output element is rounded once.
 *
 * Streaming: norms and dots are float64 sums in element order, which continue across row chunks.
 * The flattened vector and the columns (`nuslerp_row_wise`) take two stats passes (norms, then
 * the dot of the normalized vectors); the rows of a ≥ 2-D tensor lie inside a chunk and need
 * none. `merge` is the stream over one chunk.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, mergeFromStream, type MergeContext, type MergeInput, type StreamChunk, type TensorStream } from "./define-merge-method.js";
import { bool, num } from "./params.js";

const NORM_CLAMP = 1e-7;
const COLINEAR_EPS = 1e-8;
const f32 = Math.fround;

type Ctx = Pick<MergeContext, "tensorName" | "baseIndex"> & { inputs: readonly Pick<MergeInput, "model" | "params">[] };

/** Indices of A and B (the non-base inputs in order), or null for mergekit's lone-tensor passthrough. */
function pickPair(ctx: Ctx): [number, number] | null {
  if (ctx.inputs.length === 1) return null;
  if (ctx.baseIndex >= 0 && ctx.inputs.length !== 3) {
    throw new ParamError(
      `merge ${ctx.tensorName} with nuslerp: expects exactly two models plus the base, got ${ctx.inputs.length} inputs (the base model can not be one of the two models to merge)`,
    );
  }
  const others = ctx.inputs.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
  if (others.length !== 2) {
    throw new ParamError(`merge ${ctx.tensorName} with nuslerp: expects exactly two models (plus an optional base), got ${others.length}`);
  }
  for (const i of others) {
    if (typeof ctx.inputs[i].params.weight !== "number") {
      throw new ParamError(`merge ${ctx.tensorName} with nuslerp: model '${ctx.inputs[i].model}' has no weight; add a weight for it`);
    }
  }
  return [others[0], others[1]];
}

/** The slerped vectors' elements: task vectors (fp32 differences) when there is a base. */
interface Pair {
  xa: Float32Array;
  xb: Float32Array;
  base: Float32Array | null;
}

/**
 * mergekit's `nuslerp(t, v0, v1)` on `groups` vectors interleaved in a block of elements: element
 * lo + k belongs to vector k % groups. One group is the flattened tensor or one row; the columns
 * (vectors along dim 0) are groups of a row's length, and their blocks are whole rows. The phases
 * run in order — addSquares over every block, norms, addDots over every block, coefficients —
 * and then blend.
 */
class InterleavedSlerp {
  private readonly s00: Float64Array;
  private readonly s11: Float64Array;
  private readonly dot: Float64Array;
  // the clamped norms, then (after `coefficients`) the blend coefficients
  private readonly c0: Float64Array;
  private readonly c1: Float64Array;
  constructor(
    private readonly groups: number,
    private readonly a: number,
    private readonly b: number,
  ) {
    [this.s00, this.s11, this.dot, this.c0, this.c1] = Array.from({ length: 5 }, () => new Float64Array(groups));
  }
  reset(): void {
    this.s00.fill(0);
    this.s11.fill(0);
    this.dot.fill(0);
  }
  addSquares({ xa, xb, base }: Pair, lo: number, hi: number): void {
    for (let k = lo, g = 0; k < hi; k++, g = g + 1 === this.groups ? 0 : g + 1) {
      const v0 = base ? f32(xa[k] - base[k]) : xa[k];
      const v1 = base ? f32(xb[k] - base[k]) : xb[k];
      this.s00[g] += v0 * v0;
      this.s11[g] += v1 * v1;
    }
  }
  norms(): void {
    for (let g = 0; g < this.groups; g++) {
      this.c0[g] = Math.max(f32(Math.sqrt(this.s00[g])), NORM_CLAMP);
      this.c1[g] = Math.max(f32(Math.sqrt(this.s11[g])), NORM_CLAMP);
    }
  }
  addDots({ xa, xb, base }: Pair, lo: number, hi: number): void {
    for (let k = lo, g = 0; k < hi; k++, g = g + 1 === this.groups ? 0 : g + 1) {
      const v0 = base ? f32(xa[k] - base[k]) : xa[k];
      const v1 = base ? f32(xb[k] - base[k]) : xb[k];
      this.dot[g] += f32(v0 / this.c0[g]) * f32(v1 / this.c1[g]);
    }
  }
  coefficients(): void {
    const { a, b } = this;
    for (let g = 0; g < this.groups; g++) {
      const cos = Math.min(1, Math.max(-1, f32(this.dot[g])));
      const theta = f32(Math.acos(cos));
      const sinTheta = f32(Math.sin(theta));
      if (Math.abs(sinTheta) < COLINEAR_EPS) {
        this.c0[g] = a;
        this.c1[g] = b;
      } else {
        this.c0[g] = f32(Math.sin(f32(a * theta))) / sinTheta;
        this.c1[g] = f32(Math.sin(f32(b * theta))) / sinTheta;
      }
    }
  }
  /** out = c0·v0 + c1·v1 (rounded to fp32), plus the base when there is one. */
  blend({ xa, xb, base }: Pair, lo: number, hi: number, out: Float32Array): void {
    for (let k = lo, g = 0; k < hi; k++, g = g + 1 === this.groups ? 0 : g + 1) {
      const v0 = base ? f32(xa[k] - base[k]) : xa[k];
      const v1 = base ? f32(xb[k] - base[k]) : xb[k];
      const r = f32(this.c0[g] * v0 + this.c1[g] * v1);
      out[k] = base ? base[k] + r : r;
    }
  }
}

/**
 * `rowLen` > 0: rows (vectors along the last dim) of that length, each slerped inside the chunk
 * holding it; otherwise `groups` interleaved vectors over the whole tensor, from two stats passes.
 */
class NuslerpStream implements TensorStream {
  private readonly slerp: InterleavedSlerp;
  private out = new Float32Array(0);
  constructor(
    private readonly ia: number,
    private readonly ib: number,
    t: number,
    groups: number,
    private readonly rowLen: number,
  ) {
    this.slerp = new InterleavedSlerp(rowLen > 0 ? 1 : groups, f32(1 - t), f32(t));
  }
  needsPass(pass: number): boolean {
    if (this.rowLen > 0) return false;
    if (pass === 1) this.slerp.norms();
    if (pass === 2) this.slerp.coefficients();
    return pass < 2;
  }
  private pair(chunk: StreamChunk): Pair {
    const c = chunk.ctx;
    return { xa: c.inputs[this.ia].data, xb: c.inputs[this.ib].data, base: c.baseIndex >= 0 ? c.inputs[c.baseIndex].data : null };
  }
  stats(pass: number, chunk: StreamChunk): void {
    const p = this.pair(chunk);
    if (pass === 0) this.slerp.addSquares(p, 0, p.xa.length);
    else this.slerp.addDots(p, 0, p.xa.length);
  }
  apply(chunk: StreamChunk): Float32Array {
    const p = this.pair(chunk);
    const n = p.xa.length;
    if (this.out.length < n) this.out = new Float32Array(n);
    const out = this.out.subarray(0, n);
    if (this.rowLen === 0) {
      this.slerp.blend(p, 0, n, out);
      return out;
    }
    const s = this.slerp;
    for (let lo = 0; lo < n; lo += this.rowLen) {
      const hi = lo + this.rowLen;
      s.reset();
      s.addSquares(p, lo, hi);
      s.norms();
      s.addDots(p, lo, hi);
      s.coefficients();
      s.blend(p, lo, hi, out);
    }
    return out;
  }
}

/** mergekit's lone-tensor passthrough, copied chunk by chunk. */
const passThrough: TensorStream = {
  needsPass: () => false,
  stats() {},
  apply: (chunk) => Float32Array.from(chunk.ctx.inputs[0].data),
};

function streamFor(ctx: Ctx & Pick<MergeContext, "params" | "shape">): TensorStream {
  const pair = pickPair(ctx);
  if (pair === null) return passThrough;
  const [ia, ib] = pair;
  const wa = ctx.inputs[ia].params.weight as number;
  const wb = ctx.inputs[ib].params.weight as number;
  const t = Math.abs(wa + wb) < 1e-6 ? 0.5 : wb / (wa + wb);
  const shape = ctx.shape;
  // A 1-D (or 0-D) tensor is one vector in every mode.
  if (ctx.params.nuslerp_flatten !== false || shape.length < 2) return new NuslerpStream(ia, ib, t, 1, 0);
  if (ctx.params.nuslerp_row_wise === true)
    return new NuslerpStream(
      ia,
      ib,
      t,
      shape.slice(1).reduce((x, y) => x * y, 1),
      0,
    );
  return new NuslerpStream(ia, ib, t, 1, shape[shape.length - 1]);
}

export const nuslerp = defineMergeMethod({
  name: "nuslerp",
  reference: "https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md#nuslerp",
  params: { nuslerp_row_wise: bool(false), nuslerp_flatten: bool(true) },
  modelParams: { weight: num() },
  base: "optional",
  check(ctx) {
    pickPair(ctx);
  },
  streaming: streamFor,
  merge: mergeFromStream(streamFor),
});
