/**
 * slerp: spherical interpolation between the base (t = 0) and the one other model (t = 1), the
 * whole tensor taken as one vector. Nearly colinear tensors (|cos| > 0.9995) are lerped.
 *
 * Numerics: mergekit runs this in numpy fp32. Norms and the dot product are accumulated in
 * float64 and rounded to fp32; the angle and coefficients are computed from those and rounded to
 * fp32 too, so the lerp/slerp branch is taken on the same fp32 cosine mergekit sees (up to its
 * own summation rounding). Each output element is rounded once.
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod, type MergeContext } from "../define-merge-method.js";
import { num } from "../params.js";

const DOT_THRESHOLD = 0.9995;
const NORM_EPS = 1e-8;
const f32 = Math.fround;

function validate(ctx: Pick<MergeContext, "tensorName" | "baseIndex" | "params"> & { inputs: readonly unknown[] }): void {
  if (typeof ctx.params.t !== "number") throw new ParamError(`merge ${ctx.tensorName} with slerp: parameter t is required; set t (0 = base, 1 = other model)`);
  if (ctx.inputs.length === 1) return; // mergekit passes a lone tensor through
  if (ctx.inputs.length !== 2) {
    throw new ParamError(`merge ${ctx.tensorName} with slerp: expects exactly two models (the base and one other), got ${ctx.inputs.length}`);
  }
  if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with slerp: base model is not among the inputs; set base_model to one of the two models`);
}

/** Spherical interpolation of v0 → v1 exactly as mergekit's numpy `slerp` (fp32). */
export function slerpVectors(t: number, v0: Float32Array, v1: Float32Array): Float32Array {
  const n = v0.length;
  let s00 = 0;
  let s11 = 0;
  for (let k = 0; k < n; k++) {
    s00 += v0[k] * v0[k];
    s11 += v1[k] * v1[k];
  }
  const n0 = f32(Math.sqrt(s00));
  const n1 = f32(Math.sqrt(s11));
  const d0 = n0 > NORM_EPS ? n0 : 1;
  const d1 = n1 > NORM_EPS ? n1 : 1;
  let dot = 0;
  for (let k = 0; k < n; k++) dot += f32(v0[k] / d0) * f32(v1[k] / d1);
  const cos = f32(dot);
  const out = new Float32Array(n);
  let c0: number;
  let c1: number;
  if (Math.abs(cos) > DOT_THRESHOLD) {
    c0 = f32(1 - t);
    c1 = f32(t);
  } else {
    const theta0 = f32(Math.acos(cos));
    const sinTheta0 = f32(Math.sin(theta0));
    const thetaT = f32(theta0 * t);
    c0 = f32(f32(Math.sin(f32(theta0 - thetaT))) / sinTheta0);
    c1 = f32(f32(Math.sin(thetaT)) / sinTheta0);
  }
  for (let k = 0; k < n; k++) out[k] = c0 * v0[k] + c1 * v1[k];
  return out;
}

export const slerp = defineMergeMethod({
  name: "slerp",
  reference: "https://en.wikipedia.org/wiki/Slerp",
  params: { t: num() },
  modelParams: {},
  base: "required",
  check: validate,
  merge(ctx) {
    validate(ctx);
    if (ctx.inputs.length === 1) return Float32Array.from(ctx.inputs[0].data);
    const base = ctx.inputs[ctx.baseIndex].data;
    const other = ctx.inputs[1 - ctx.baseIndex].data;
    return slerpVectors(ctx.params.t as number, base, other);
  },
});
