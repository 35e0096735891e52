/**
 * nearswap: per element, take the other model's value where it is close to the base and keep the
 * base where they differ: w = clamp(t / max(|base − x|, 1e-6), 0, 1), result w·x + (1 − w)·base.
 * Exactly one model besides the base; with none, the base passes through.
 *
 * Numerics: fp32 in mergekit (torch); here each element is computed in float64 with w rounded
 * to fp32 and the result rounded once, within fp32 rounding of mergekit.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, type MergeContext } from "./define-merge-method.js";
import { num } from "./params.js";

const f32 = Math.fround;

function validate(ctx: Pick<MergeContext, "tensorName" | "baseIndex" | "params"> & { inputs: readonly unknown[] }): void {
  if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with nearswap: a base model is required; set base_model`);
  if (ctx.inputs.length > 2) {
    throw new ParamError(`merge ${ctx.tensorName} with nearswap: expects exactly two models (the base and one other), got ${ctx.inputs.length}`);
  }
  if (typeof ctx.params.t !== "number")
    throw new ParamError(`merge ${ctx.tensorName} with nearswap: parameter t is required; set t (the similarity threshold)`);
}

export const nearswap = defineMergeMethod({
  name: "nearswap",
  reference: "https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
  params: { t: num() },
  modelParams: {},
  base: "required",
  elementwise: true,
  check: validate,
  merge(ctx) {
    validate(ctx);
    const a = ctx.inputs[ctx.baseIndex].data;
    if (ctx.inputs.length === 1) return Float32Array.from(a);
    const b = ctx.inputs[1 - ctx.baseIndex].data;
    const t = f32(ctx.params.t as number);
    const out = new Float32Array(a.length);
    for (let k = 0; k < a.length; k++) {
      const diff = Math.max(Math.abs(f32(a[k] - b[k])), 1e-6);
      const w = Math.min(1, Math.max(0, f32(t / diff)));
      out[k] = w * b[k] + (1 - w) * a[k];
    }
    return out;
  },
});
