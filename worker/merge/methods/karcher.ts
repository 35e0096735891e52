/**
 * karcher: the Riemannian (Karcher) mean of the inputs' directions on the unit sphere, with equal
 * weights 1/N (config weights are ignored, as in mergekit), scaled by the mean of all the norms.
 * A base model, when set, is just one more point.
 *
 * Numerics: mergekit iterates in torch fp32. Dot products and norms are accumulated in float64
 * and rounded to fp32 (so the θ < tol and ‖T‖ < tol decisions see fp32 values as mergekit's do);
 * the iterate u is held in fp32 like mergekit's; the output is rounded once.
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod } from "../define-merge-method.js";
import { num } from "../params.js";

const f32 = Math.fround;

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < v.length; k++) s += v[k] * v[k];
  return f32(Math.sqrt(s));
}
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return f32(s);
}

/** mergekit's `karcher_merge_tensors` (tensors, alphas, max_iter, tol). */
export function karcherMean(xs: readonly Float32Array[], alphas: readonly number[], maxIter: number, tol: number): Float32Array {
  const n = xs[0].length;
  const norms = xs.map(norm);
  const valid = xs.map((_, i) => i).filter((i) => norms[i] > tol);
  if (valid.length === 0) return new Float32Array(n);
  const units = valid.map((i) => {
    const u = new Float32Array(n);
    const x = xs[i];
    for (let k = 0; k < n; k++) u[k] = x[k] / norms[i];
    return u;
  });
  const alphaSum = valid.reduce((s, i) => s + alphas[i], 0);
  const a = valid.map((i) => alphas[i] / alphaSum);

  let u = new Float32Array(n);
  {
    const acc = new Float64Array(n);
    for (let j = 0; j < units.length; j++) for (let k = 0; k < n; k++) acc[k] += a[j] * units[j][k];
    const nu = norm(acc);
    if (nu < tol) u.set(units[0]);
    else for (let k = 0; k < n; k++) u[k] = acc[k] / nu;
  }

  const T = new Float64Array(n);
  for (let iter = 0; iter < maxIter; iter++) {
    T.fill(0);
    for (let j = 0; j < units.length; j++) {
      const c = Math.min(1, Math.max(-1, dot(u, units[j])));
      const theta = f32(Math.acos(c));
      if (theta < tol) continue;
      const coef = a[j] * f32(theta / f32(Math.sin(theta)));
      const uj = units[j];
      for (let k = 0; k < n; k++) T[k] += coef * (uj[k] - c * u[k]);
    }
    const nT = norm(T);
    if (nT < tol) break;
    const cosT = f32(Math.cos(nT));
    const sinT = f32(Math.sin(nT));
    const next = new Float32Array(n);
    for (let k = 0; k < n; k++) next[k] = cosT * u[k] + (sinT * T[k]) / nT;
    const nn = norm(next);
    if (nn > tol) for (let k = 0; k < n; k++) next[k] /= nn;
    u = next;
  }

  let s = 0;
  for (let i = 0; i < xs.length; i++) s += alphas[i] * norms[i];
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = s * u[k];
  return out;
}

export const karcher = defineMergeMethod({
  name: "karcher",
  reference: "https://en.wikipedia.org/wiki/Karcher_mean",
  params: { max_iter: num(10), tol: num(1e-5) },
  modelParams: {},
  base: "none",
  check(ctx) {
    if (ctx.inputs.length === 0) throw new ParamError(`merge ${ctx.tensorName} with karcher: no input models`);
  },
  merge(ctx) {
    const N = ctx.inputs.length;
    if (N === 0) throw new ParamError(`merge ${ctx.tensorName} with karcher: no input models`);
    if (N === 1) return Float32Array.from(ctx.inputs[0].data);
    const maxIter = typeof ctx.params.max_iter === "number" ? ctx.params.max_iter : 10;
    const tol = typeof ctx.params.tol === "number" ? ctx.params.tol : 1e-5;
    return karcherMean(
      ctx.inputs.map((i) => i.data),
      ctx.inputs.map(() => 1 / N),
      maxIter,
      tol,
    );
  },
});
