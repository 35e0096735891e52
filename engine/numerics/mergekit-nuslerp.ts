/**
 * mergekit's `nuslerp` (merge_methods/nuslerp.py) in torch's arithmetic, for `--numerics mergekit`
 * in bf16/fp16. Two models A, B in config order, t = w_B/(w_A + w_B) in Python doubles (0.5 when
 * |Σw| < 1e-6); with a base, base + nuslerp(t, A − base, B − base). Per vector (the flattened
 * tensor, or each row with `nuslerp_flatten: false`): v/‖v‖.clamp(min=1e-7), cos = Σ v0ᵤ·v1ᵤ,
 * θ = acos(cos.clamp(−1, 1)), (sin((1−t)θ)·v0 + sin(tθ)·v1)/sin θ, and (1−t)·v0 + t·v1 where
 * |sin θ| < 1e-8. acos and sin are torch's SLEEF routines; every op rounds to the dtype.
 * Column vectors of a 2-D tensor (`nuslerp_row_wise: true` with `nuslerp_flatten: false`:
 * mergekit transposes, so the norms and sums run over a strided dim) use torch's outer-reduction
 * order (normColumns, sumDim0).
 */
import { ParamError } from "../errors/index.js";
import { subjectOf } from "../methods/generalized-task-arithmetic.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { torchUnary } from "./torch-unary.js";
import { add, div, mul, mulScalar, norm, normColumns, roundTo, sub, sumAll, sumDim0 } from "./torch-float.js";

const EPS = 1e-8;

export const nuslerpMergekit: MergekitMethod = {
  elementwise: () => false,
  merge(ctx: MergekitContext): Float32Array {
    const { dt, profile: p } = ctx;
    const { sin, acos } = torchUnary(p, dt);
    if (ctx.inputs.length === 1) return Float32Array.from(ctx.inputs[0].data);
    const others = ctx.inputs.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
    if (ctx.baseIndex >= 0 && ctx.inputs.length !== 3)
      throw new ParamError(`${subjectOf("nuslerp", ctx.tensorName)}: NuSlerp base model can not be one of the two models to merge`);
    if (others.length !== 2)
      throw new ParamError(`${subjectOf("nuslerp", ctx.tensorName)}: NuSlerp merge expects exactly two models (plus optional base model)`);
    const ws = others.map((i) => {
      const w = ctx.inputs[i].params.weight;
      if (typeof w !== "number") throw new ParamError(`${subjectOf("nuslerp", ctx.tensorName, ctx.inputs[i].model)}: per-model parameter 'weight' is required`);
      return w;
    });
    const t = Math.abs(ws[0] + ws[1]) < 1e-6 ? 0.5 : ws[1] / (ws[0] + ws[1]);
    const base = ctx.baseIndex >= 0 ? ctx.inputs[ctx.baseIndex].data : undefined;
    const n = ctx.inputs[others[0]].data.length;
    const [v0, v1] = others.map((i) => {
      const x = ctx.inputs[i].data;
      if (!base) return x;
      const d = new Float32Array(n);
      for (let j = 0; j < n; j++) d[j] = sub(dt, x[j], base[j]);
      return d;
    });
    if (ctx.params.nuslerp_flatten === false && ctx.params.nuslerp_row_wise === true && ctx.shape.length >= 2) {
      if (ctx.shape.length > 2)
        throw new ParamError(
          `${subjectOf("nuslerp", ctx.tensorName)}: nuslerp over columns of a ${ctx.shape.length}-D tensor is not reproduced; use --numerics default`,
        );
      const out = columns(ctx, v0, v1, t);
      if (base) for (let j = 0; j < n; j++) out[j] = add(dt, base[j], out[j]);
      return out;
    }
    const cols = ctx.params.nuslerp_flatten === false && ctx.shape.length >= 1 ? ctx.shape[ctx.shape.length - 1] : n;
    const normMin = roundTo(dt, 1e-7);
    const eps = roundTo(dt, EPS);
    const out = new Float32Array(n);
    const prod = new Float32Array(cols);
    for (let from = 0; from < n; from += cols) {
      const n0 = Math.max(norm(p, dt, v0, from, cols), normMin);
      const n1 = Math.max(norm(p, dt, v1, from, cols), normMin);
      for (let j = 0; j < cols; j++) prod[j] = mul(dt, div(dt, v0[from + j], n0), div(dt, v1[from + j], n1));
      const cos = Math.min(1, Math.max(-1, sumAll(dt, prod, p.lanes)));
      const theta = roundTo(dt, acos(cos));
      const sinTheta = roundTo(dt, sin(theta));
      if (Math.abs(sinTheta) < eps) {
        for (let j = from; j < from + cols; j++) out[j] = add(dt, mulScalar(p, dt, v0[j], 1 - t), mulScalar(p, dt, v1[j], t));
      } else {
        const s0 = roundTo(dt, sin(mulScalar(p, dt, theta, 1 - t)));
        const s1 = roundTo(dt, sin(mulScalar(p, dt, theta, t)));
        for (let j = from; j < from + cols; j++) out[j] = div(dt, add(dt, mul(dt, s0, v0[j]), mul(dt, s1, v1[j])), sinTheta);
      }
    }
    if (base) for (let j = 0; j < n; j++) out[j] = add(dt, base[j], out[j]);
    return out;
  },
};

/** nuslerp of each column of 2-D v0, v1 (mergekit's transpose(0, −1) view), torch's order. */
function columns(ctx: MergekitContext, v0: Float32Array, v1: Float32Array, t: number): Float32Array {
  const { dt, profile: p } = ctx;
  const { sin, acos } = torchUnary(p, dt);
  const [rows, cols] = ctx.shape;
  const normMin = roundTo(dt, 1e-7);
  const eps = roundTo(dt, EPS);
  const n0 = normColumns(p, dt, v0, rows, cols).map((v) => Math.max(v, normMin));
  const n1 = normColumns(p, dt, v1, rows, cols).map((v) => Math.max(v, normMin));
  const prod = new Float32Array(rows * cols);
  for (let i = 0, k = 0; i < rows; i++) for (let j = 0; j < cols; j++, k++) prod[k] = mul(dt, div(dt, v0[k], n0[j]), div(dt, v1[k], n1[j]));
  const cos = sumDim0(dt, rows, cols, (r, j) => prod[r * cols + j], new Float32Array(cols), p.lanes);
  const out = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    const theta = roundTo(dt, acos(Math.min(1, Math.max(-1, cos[j]))));
    const sinTheta = roundTo(dt, sin(theta));
    if (Math.abs(sinTheta) < eps) {
      for (let k = j; k < rows * cols; k += cols) out[k] = add(dt, mulScalar(p, dt, v0[k], 1 - t), mulScalar(p, dt, v1[k], t));
    } else {
      const s0 = roundTo(dt, sin(mulScalar(p, dt, theta, 1 - t)));
      const s1 = roundTo(dt, sin(mulScalar(p, dt, theta, t)));
      for (let k = j; k < rows * cols; k += cols) out[k] = div(dt, add(dt, mul(dt, s0, v0[k]), mul(dt, s1, v1[k])), sinTheta);
    }
  }
  return out;
}
