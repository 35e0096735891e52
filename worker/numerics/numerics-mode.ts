/**
 * `--numerics default|mergekit`: which arithmetic a merge uses. "default" is mergeloom's (fp32
 * throughout, rounded once to the output dtype); "mergekit" reproduces mergekit's torch CPU
 * arithmetic in its compute dtype, bit for bit (worker/numerics/mergekit-methods.ts).
 */
import type { FloatDType } from "../../proto/dtype.js";
import { ConfigError } from "../../proto/errors.js";
import type { TensorInputSpec } from "../../proto/merge-task.js";
import { MERGEKIT_NUMERICS_METHODS } from "./mergekit-methods.js";

export type NumericsMode = "default" | "mergekit";
export const NUMERICS_MODES: readonly NumericsMode[] = ["default", "mergekit"];

/** Fails when the method has no mergekit arithmetic to reproduce (mergeloom's own methods). */
export function checkMergekitNumerics(method: string): void {
  if (!MERGEKIT_NUMERICS_METHODS.has(method)) {
    throw new ConfigError(
      "merge_method",
      `'${method}' is mergeloom's own method, so --numerics mergekit has nothing to reproduce; use --numerics default (mergekit methods: ${[...MERGEKIT_NUMERICS_METHODS].join(", ")})`,
    );
  }
}

/**
 * The dtype mergekit computes a tensor in: the config's `dtype` (every input is cast to it on
 * load), else the stored dtype. Without `dtype`, the task-vector methods cast every model to the
 * base's dtype; the others stack the inputs, which torch promotes to a common dtype (fp32 unless
 * all inputs share one).
 */
export function mergekitComputeDtype(configDtype: FloatDType | undefined, inputs: readonly TensorInputSpec[], baseIndex: number, method: string): FloatDType {
  if (configDtype) return configDtype;
  const stored = inputs.map((i) => i.source.dtype as FloatDType);
  if (baseIndex >= 0 && MERGEKIT_NUMERICS_METHODS.get(method)?.castsToBase) return stored[baseIndex];
  return stored.every((d) => d === stored[0]) ? stored[0] : "F32";
}
