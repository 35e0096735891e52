/**
 * The per-tensor entry of `--numerics mergekit` (called by the driver, merge-tensor.ts, for a
 * tensor whose task carries `computeDtype`): cast the inputs to the compute dtype as mergekit's
 * loader does, run the method's mergekit arithmetic, return values of that dtype (the driver
 * casts them to the output dtype, as mergekit's writer does). `torch` names the build reproduced
 * (absent: torch 2.x; "1.13": Debian's torch 1.13 without MKL).
 */
import { ParamError } from "../errors/index.js";
import type { TensorSpec } from "@mergeloom/proto/merge-task";
import type { MergeContext } from "../methods/define-merge-method.js";
import { MERGEKIT_NUMERICS_METHODS } from "./mergekit-methods.js";
import { DEFAULT_PROFILE, TORCH1, roundArray, type ComputeDType } from "./torch-float.js";

function methodOf(name: string) {
  const m = MERGEKIT_NUMERICS_METHODS.get(name);
  if (!m)
    throw new ParamError(
      `merge method '${name}' has no mergekit arithmetic to reproduce (--numerics mergekit covers: ${[...MERGEKIT_NUMERICS_METHODS.keys()].join(", ")})`,
    );
  return m;
}

/** Whether row chunks of this tensor may be merged independently in mergekit mode. */
export function isElementwiseMergekit(t: Pick<TensorSpec, "method" | "params" | "inputs">): boolean {
  return methodOf(t.method).elementwise(t.params, t.inputs);
}

/** Merges one chunk (`start` = its first flat index, `numel` = the whole tensor's) in `dt`. */
export function mergeMergekit(method: string, ctx: MergeContext, dt: ComputeDType, start: number, numel: number, torch?: "1.13"): Float32Array {
  const m = methodOf(method);
  for (const i of ctx.inputs) roundArray(dt, i.data);
  return m.merge({ ...ctx, dt, profile: torch === "1.13" ? TORCH1 : DEFAULT_PROFILE, start, numel });
}
