/**
 * passthrough: copies the one input tensor (frankenmerges stack layers of different models by
 * slices), optionally multiplied by the model's `scale`.
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, type MergeContext } from "./define-merge-method.js";
import { optionalNum } from "./params.js";

function validate(ctx: Pick<MergeContext, "tensorName"> & { inputs: readonly { model: string }[] }): void {
  if (ctx.inputs.length !== 1) {
    throw new ParamError(
      `merge ${ctx.tensorName} with passthrough: expects exactly one model per tensor, got ${ctx.inputs.length} (${ctx.inputs.map((i) => i.model).join(", ")}); give each slice a single source and do not set base_model`,
    );
  }
}

export const passthrough = defineMergeMethod({
  name: "passthrough",
  reference: "https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md#passthrough",
  params: {},
  modelParams: { scale: optionalNum() },
  base: "none",
  elementwise: true,
  check: validate,
  merge(ctx) {
    validate(ctx);
    const { data, params } = ctx.inputs[0];
    if (typeof params.scale !== "number") return Float32Array.from(data);
    // torch multiplies by the scale as an fp32 scalar
    const s = Math.fround(params.scale);
    const out = new Float32Array(data.length);
    for (let k = 0; k < data.length; k++) out[k] = data[k] * s;
    return out;
  },
});
