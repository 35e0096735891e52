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
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod, type MergeContext, type MergeInput } from "../define-merge-method.js";
import { bool, num } from "../params.js";

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

/**
 * mergekit's `nuslerp(t, v0, v1)` on vectors of length `len` laid out along one axis: vector g
 * (g in [0, outer·inner)) has element j at (g / inner | 0)·len·inner + j·inner + g % inner.
 */
function slerpAlongAxis(t: number, v0: Float64Array, v1: Float64Array, len: number, inner: number, out: Float32Array): void {
  const groups = v0.length / len;
  const a = f32(1 - t);
  const b = f32(t);
  for (let g = 0; g < groups; g++) {
    const start = Math.floor(g / inner) * len * inner + (g % inner);
    let s00 = 0;
    let s11 = 0;
    for (let j = 0, k = start; j < len; j++, k += inner) {
      s00 += v0[k] * v0[k];
      s11 += v1[k] * v1[k];
    }
    const n0 = Math.max(f32(Math.sqrt(s00)), NORM_CLAMP);
    const n1 = Math.max(f32(Math.sqrt(s11)), NORM_CLAMP);
    let dot = 0;
    for (let j = 0, k = start; j < len; j++, k += inner) dot += f32(v0[k] / n0) * f32(v1[k] / n1);
    const cos = Math.min(1, Math.max(-1, f32(dot)));
    const theta = f32(Math.acos(cos));
    const sinTheta = f32(Math.sin(theta));
    let c0: number;
    let c1: number;
    if (Math.abs(sinTheta) < COLINEAR_EPS) {
      c0 = a;
      c1 = b;
    } else {
      c0 = f32(Math.sin(f32(a * theta))) / sinTheta;
      c1 = f32(Math.sin(f32(b * theta))) / sinTheta;
    }
    for (let j = 0, k = start; j < len; j++, k += inner) out[k] = c0 * v0[k] + c1 * v1[k];
  }
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
  merge(ctx) {
    const pair = pickPair(ctx);
    if (pair === null) return Float32Array.from(ctx.inputs[0].data);
    const [ia, ib] = pair;
    const wa = ctx.inputs[ia].params.weight as number;
    const wb = ctx.inputs[ib].params.weight as number;
    const t = Math.abs(wa + wb) < 1e-6 ? 0.5 : wb / (wa + wb);
    const base = ctx.baseIndex >= 0 ? ctx.inputs[ctx.baseIndex].data : null;
    const xa = ctx.inputs[ia].data;
    const xb = ctx.inputs[ib].data;
    const n = xa.length;
    // Task vectors are fp32 differences in mergekit; hold them (exactly) in float64.
    const v0 = new Float64Array(n);
    const v1 = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      v0[k] = base ? f32(xa[k] - base[k]) : xa[k];
      v1[k] = base ? f32(xb[k] - base[k]) : xb[k];
    }
    const shape = ctx.shape;
    let len = n;
    let inner = 1;
    if (ctx.params.nuslerp_flatten === false && shape.length >= 1) {
      if (ctx.params.nuslerp_row_wise === true) {
        len = shape[0];
        inner = n / Math.max(len, 1);
      } else {
        len = shape[shape.length - 1];
      }
    }
    const out = new Float32Array(n);
    if (n === 0) return out;
    slerpAlongAxis(t, v0, v1, len, inner, out);
    if (base) for (let k = 0; k < n; k++) out[k] = base[k] + out[k];
    return out;
  },
});
