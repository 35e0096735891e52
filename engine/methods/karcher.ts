/**
 * karcher: the Riemannian (Karcher) mean of the inputs' directions on the unit sphere, with equal
 * weights 1/N (config weights are ignored, as in mergekit), scaled by the mean of all the norms.
 * A base model, when set, is just one more point.
 *
 * Numerics: mergekit iterates in torch fp32. Dot products and norms are accumulated in float64
 * and rounded to fp32 (so the θ < tol and ‖T‖ < tol decisions see fp32 values as mergekit's do);
 * the iterate u is held in fp32 like mergekit's; the output is rounded once.
 *
 * Streaming: every reduction is a float64 sum in flat order, so it continues across row chunks.
 * The iterate u is not kept: u_t[k] depends only on the inputs' element k and the scalars of the
 * iterations so far, so each chunk recomputes it (O(t) per element) with the same operations.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, type MergeContext, type StreamChunk, type StreamInfo, type TensorStream } from "./define-merge-method.js";
import { num } from "./params.js";

const f32 = Math.fround;

/** s + Σ a[k]·b[k] in float64, in index order (a chunk continues the whole-vector sum). */
function addDot(a: ArrayLike<number>, b: ArrayLike<number>, s: number): number {
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
}
function addSquares(v: ArrayLike<number>, s: number): number {
  return addDot(v, v, s);
}
/** The fp32 norm from a finished sum of squares. */
function normOf(sumSq: number): number {
  return f32(Math.sqrt(sumSq));
}

/** The points that take part (norm > tol), their weights a_j = α_i/Σα_valid, and the output scale Σα_i‖x_i‖. */
interface Points {
  valid: number[];
  a: number[];
  scale: number;
}
function pointsOf(norms: readonly number[], alphas: readonly number[], tol: number): Points {
  const valid = norms.map((_, i) => i).filter((i) => norms[i] > tol);
  const alphaSum = valid.reduce((s, i) => s + alphas[i], 0);
  let scale = 0;
  for (let i = 0; i < norms.length; i++) scale += alphas[i] * norms[i];
  return { valid, a: valid.map((i) => alphas[i] / alphaSum), scale };
}

/** One iteration's scalars: the points with θ ≥ tol, their cos θ and a·θ/sin θ, then ‖T‖ and ‖next‖. */
interface Step {
  active: number[];
  c: number[];
  coef: number[];
  nT: number;
  cosT: number;
  sinT: number;
  nn: number;
}
function stepOf(dots: readonly number[], a: readonly number[], tol: number): Step {
  const step: Step = { active: [], c: [], coef: [], nT: 0, cosT: 0, sinT: 0, nn: 0 };
  dots.forEach((d, j) => {
    const c = Math.min(1, Math.max(-1, d));
    const theta = f32(Math.acos(c));
    if (theta < tol) return;
    step.active.push(j);
    step.c.push(c);
    step.coef.push(a[j] * f32(theta / f32(Math.sin(theta))));
  });
  return step;
}
function setTangentNorm(step: Step, nT: number): void {
  step.nT = nT;
  step.cosT = f32(Math.cos(nT));
  step.sinT = f32(Math.sin(nT));
}

// Elementwise parts of the algorithm, on whole tensors (merge) or on row chunks (stream).

function toUnit(x: Float32Array, norm: number, out: Float32Array): Float32Array {
  for (let k = 0; k < out.length; k++) out[k] = x[k] / norm;
  return out;
}
/** acc = Σ_j a_j·u_j in float64, j in order. */
function weightedSum(units: readonly Float32Array[], a: readonly number[], acc: Float64Array): Float64Array {
  acc.fill(0);
  for (let j = 0; j < units.length; j++) for (let k = 0; k < acc.length; k++) acc[k] += a[j] * units[j][k];
  return acc;
}
/** The starting direction normalize(acc), or the first unit when acc is ~0. */
function startDirection(units: readonly Float32Array[], acc: Float64Array, nu: number, tol: number, u: Float32Array): Float32Array {
  if (nu < tol) u.set(units[0]);
  else for (let k = 0; k < u.length; k++) u[k] = acc[k] / nu;
  return u;
}
/** T = Σ_active coef_j (u_j − c_j·u) in float64. */
function tangent(units: readonly Float32Array[], u: Float32Array, step: Step, T: Float64Array): Float64Array {
  T.fill(0);
  step.active.forEach((j, m) => {
    const uj = units[j];
    const c = step.c[m];
    const coef = step.coef[m];
    for (let k = 0; k < T.length; k++) T[k] += coef * (uj[k] - c * u[k]);
  });
  return T;
}
/** next = cos‖T‖·u + sin‖T‖·T/‖T‖ (fp32), before the renormalization. */
function advance(u: Float32Array, T: Float64Array, step: Step, next: Float32Array): Float32Array {
  const { cosT, sinT, nT } = step;
  for (let k = 0; k < next.length; k++) next[k] = cosT * u[k] + (sinT * T[k]) / nT;
  return next;
}
function renormalize(next: Float32Array, nn: number, tol: number): void {
  if (nn > tol) for (let k = 0; k < next.length; k++) next[k] /= nn;
}
function scaled(u: Float32Array, s: number, out: Float32Array): Float32Array {
  for (let k = 0; k < out.length; k++) out[k] = s * u[k];
  return out;
}

/** mergekit's `karcher_merge_tensors` (tensors, alphas, max_iter, tol). */
export function karcherMean(xs: readonly Float32Array[], alphas: readonly number[], maxIter: number, tol: number): Float32Array {
  const n = xs[0].length;
  const norms = xs.map((x) => normOf(addSquares(x, 0)));
  const pts = pointsOf(norms, alphas, tol);
  if (pts.valid.length === 0) return new Float32Array(n);
  const units = pts.valid.map((i) => toUnit(xs[i], norms[i], new Float32Array(n)));
  const acc = weightedSum(units, pts.a, new Float64Array(n));
  let u = startDirection(units, acc, normOf(addSquares(acc, 0)), tol, new Float32Array(n));
  const T = new Float64Array(n);
  for (let iter = 0; iter < maxIter; iter++) {
    const step = stepOf(
      units.map((uj) => f32(addDot(u, uj, 0))),
      pts.a,
      tol,
    );
    const nT = normOf(addSquares(tangent(units, u, step, T), 0));
    if (nT < tol) break;
    setTangentNorm(step, nT);
    const next = advance(u, T, step, new Float32Array(n));
    renormalize(next, normOf(addSquares(next, 0)), tol);
    u = next;
  }
  return scaled(u, pts.scale, new Float32Array(n));
}

function validate(ctx: { tensorName: string; inputs: readonly unknown[] }): void {
  if (ctx.inputs.length === 0) throw new ParamError(`merge ${ctx.tensorName} with karcher: no input models`);
}
function settings(ctx: Pick<MergeContext, "params">): { maxIter: number; tol: number } {
  return {
    maxIter: typeof ctx.params.max_iter === "number" ? ctx.params.max_iter : 10,
    tol: typeof ctx.params.tol === "number" ? ctx.params.tol : 1e-5,
  };
}

/**
 * What the next pass computes: the inputs' norms, the start direction's norm, then per iteration
 * the dots u·u_j, ‖T‖ and ‖next‖ — three passes, as each needs the previous one's scalar. So a
 * tensor takes 2 + 3·(finished iterations) stats passes, plus 2 (dots, ‖T‖ < tol) when it converges.
 */
type Pass = "norms" | "start" | "dots" | "tangent" | "advance" | "done";

/** Per-chunk buffers, grown on demand. */
class Buffers {
  private f: Float32Array[] = [];
  private d: Float64Array[] = [];
  f32(i: number, n: number): Float32Array {
    if (!this.f[i] || this.f[i].length < n) this.f[i] = new Float32Array(n);
    return this.f[i].subarray(0, n);
  }
  f64(i: number, n: number): Float64Array {
    if (!this.d[i] || this.d[i].length < n) this.d[i] = new Float64Array(n);
    return this.d[i].subarray(0, n);
  }
}

class KarcherStream implements TensorStream {
  private pass: Pass = "norms";
  private sums: number[] = [];
  private norms: number[] = [];
  private pts: Points = { valid: [], a: [], scale: 0 };
  private nu = 0;
  /** The finished iterations, and the one in progress. */
  private steps: Step[] = [];
  private step?: Step;
  private iter = 0;
  private readonly bufs = new Buffers();
  constructor(
    private readonly count: number,
    private readonly maxIter: number,
    private readonly tol: number,
  ) {}

  needsPass(pass: number): boolean {
    if (this.count === 1) return false;
    if (pass > 0) this.endPass();
    const sums = this.pass === "norms" ? this.count : this.pass === "dots" ? this.pts.valid.length : 1;
    this.sums = new Array<number>(sums).fill(0);
    return this.pass !== "done";
  }

  /** Turns the finished pass's sums into scalars and picks the next pass, stopping where merge stops. */
  private endPass(): void {
    const tol = this.tol;
    switch (this.pass) {
      case "norms":
        this.norms = this.sums.map(normOf);
        this.pts = pointsOf(
          this.norms,
          Array.from({ length: this.count }, () => 1 / this.count),
          tol,
        );
        this.pass = this.pts.valid.length === 0 ? "done" : "start";
        break;
      case "start":
        this.nu = normOf(this.sums[0]);
        this.pass = this.iter < this.maxIter ? "dots" : "done";
        break;
      case "dots":
        this.step = stepOf(this.sums.map(f32), this.pts.a, tol);
        this.pass = "tangent";
        break;
      case "tangent": {
        const nT = normOf(this.sums[0]);
        if (nT < tol) {
          this.pass = "done";
          break;
        }
        setTangentNorm(this.step!, nT);
        this.pass = "advance";
        break;
      }
      case "advance":
        this.step!.nn = normOf(this.sums[0]);
        this.steps.push(this.step!);
        this.step = undefined;
        this.iter++;
        this.pass = this.iter < this.maxIter ? "dots" : "done";
        break;
    }
  }

  /** The chunk's unit vectors of the valid points. */
  private units(chunk: StreamChunk): Float32Array[] {
    const inputs = chunk.ctx.inputs;
    const n = inputs[0].data.length;
    return this.pts.valid.map((i, j) => toUnit(inputs[i].data, this.norms[i], this.bufs.f32(3 + j, n)));
  }

  /** The chunk's unit vectors, and the iterate after the finished iterations. */
  private direction(chunk: StreamChunk): { units: Float32Array[]; u: Float32Array } {
    const units = this.units(chunk);
    const n = chunk.ctx.inputs[0].data.length;
    const acc = weightedSum(units, this.pts.a, this.bufs.f64(0, n));
    let at = 0; // u and next alternate between buffers 0 and 1
    let u = startDirection(units, acc, this.nu, this.tol, this.bufs.f32(at, n));
    const T = this.bufs.f64(1, n);
    for (const step of this.steps) {
      at ^= 1;
      const next = advance(u, tangent(units, u, step, T), step, this.bufs.f32(at, n));
      renormalize(next, step.nn, this.tol);
      u = next;
    }
    return { units, u };
  }

  stats(_pass: number, chunk: StreamChunk): void {
    const inputs = chunk.ctx.inputs;
    const s = this.sums;
    switch (this.pass) {
      case "norms":
        for (let i = 0; i < inputs.length; i++) s[i] = addSquares(inputs[i].data, s[i]);
        return;
      case "start":
        s[0] = addSquares(weightedSum(this.units(chunk), this.pts.a, this.bufs.f64(0, inputs[0].data.length)), s[0]);
        return;
    }
    const { units, u } = this.direction(chunk);
    if (this.pass === "dots") {
      units.forEach((uj, j) => (s[j] = addDot(u, uj, s[j])));
      return;
    }
    const T = tangent(units, u, this.step!, this.bufs.f64(1, u.length));
    if (this.pass === "tangent") s[0] = addSquares(T, s[0]);
    else s[0] = addSquares(advance(u, T, this.step!, this.bufs.f32(2, u.length)), s[0]);
  }

  apply(chunk: StreamChunk): Float32Array {
    const inputs = chunk.ctx.inputs;
    if (this.count === 1) return Float32Array.from(inputs[0].data);
    const n = inputs[0].data.length;
    const out = this.bufs.f32(2, n);
    if (this.pts.valid.length === 0) return out.fill(0);
    return scaled(this.direction(chunk).u, this.pts.scale, out);
  }
}

export const karcher = defineMergeMethod({
  name: "karcher",
  reference: "https://en.wikipedia.org/wiki/Karcher_mean",
  params: { max_iter: num(10), tol: num(1e-5) },
  modelParams: {},
  base: "none",
  check: validate,
  streaming(info: StreamInfo) {
    validate(info);
    const { maxIter, tol } = settings(info);
    return new KarcherStream(info.inputs.length, maxIter, tol);
  },
  merge(ctx) {
    validate(ctx);
    const N = ctx.inputs.length;
    if (N === 1) return Float32Array.from(ctx.inputs[0].data);
    const { maxIter, tol } = settings(ctx);
    return karcherMean(
      ctx.inputs.map((i) => i.data),
      ctx.inputs.map(() => 1 / N),
      maxIter,
      tol,
    );
  },
});
