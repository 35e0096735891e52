/**
 * `--numerics default|mergekit`: which arithmetic a merge uses. "default" is mergeloom's (fp32
 * throughout, rounded once to the output dtype); "mergekit" reproduces mergekit's torch CPU
 * arithmetic in its compute dtype, bit for bit (engine/numerics/mergekit-methods.ts).
 */
import type { FloatDType } from "@mergeloom/proto/dtype";
import { ConfigError } from "../errors/index.js";
import type { TensorInputSpec } from "@mergeloom/proto/merge-task";
import { MERGEKIT_NUMERICS_METHODS } from "./mergekit-methods.js";
import { ARCEE_FUSION_SAMPLE_LIMIT } from "./mergekit-arcee-fusion.js";

export type NumericsMode = "default" | "mergekit" | "mergekit-torch1.13";
export const NUMERICS_MODES: readonly NumericsMode[] = ["default", "mergekit", "mergekit-torch1.13"];

/**
 * The torch build a mergekit mode reproduces: "2" is torch 2.x as pip installs it (x86 wheel with
 * MKL); "1.13" is torch 1.13 as Debian 12 builds it (python3-torch: no MKL, so fp32 sin/cos/acos/
 * log come from SLEEF's AVX2 routines and `torch.dot` from reference BLAS; scalars rounded to the
 * tensor's dtype in `*` and `/`). undefined for the default numerics.
 */
export type TorchBuild = "2" | "1.13";
export function torchBuildOf(mode: NumericsMode | undefined): TorchBuild | undefined {
  return mode === "mergekit" ? "2" : mode === "mergekit-torch1.13" ? "1.13" : undefined;
}
/** How a refusal names the mode. */
const modeName = (torch: TorchBuild): string => (torch === "2" ? "--numerics mergekit" : "--numerics mergekit-torch1.13");

/** mergeloom's own methods: mergekit has no arithmetic for them to reproduce. */
const OWN_METHODS = new Set(["consensus_ta", "consensus_ties"]);

/** Fails when --numerics mergekit cannot reproduce the method's mergekit output bit for bit. */
export function checkMergekitNumerics(method: string, torch: TorchBuild = "2"): void {
  if (MERGEKIT_NUMERICS_METHODS.has(method)) return;
  const covered = [...MERGEKIT_NUMERICS_METHODS.keys()].join(", ");
  throw new ConfigError(
    "merge_method",
    OWN_METHODS.has(method)
      ? `'${method}' is mergeloom's own method, so ${modeName(torch)} has nothing to reproduce; use --numerics default`
      : `${modeName(torch)} does not reproduce '${method}' bit for bit yet (it covers ${covered}); use --numerics default, which follows mergekit's semantics in fp32`,
  );
}

/** Methods that fail inside mergekit on torch 1.13 in float16 (the CPU kernel they call is missing). */
const TORCH1_NO_HALF: Readonly<Record<string, string>> = {
  karcher: "dot",
  arcee_fusion: "softmax",
  model_stock: "clamp_min",
  nearswap: "clamp_min",
  nuslerp: "clamp_min",
  multislerp: "cos",
  sce: "topk",
};

/**
 * Fails (at plan time) when the method cannot be reproduced for this tensor: arcee_fusion above
 * mergekit's 10⁶-element sampling threshold (an unseeded sample); float16 where torch 1.13 lacks
 * a kernel (mergekit itself fails there).
 */
export function checkMergekitTensor(method: string, dt: FloatDType, tensorName: string, shape: readonly number[], torch: TorchBuild = "2"): void {
  if (torch === "1.13" && dt === "F16" && TORCH1_NO_HALF[method])
    throw new ConfigError(
      "dtype",
      `mergekit cannot run ${method} in float16 on torch 1.13 (torch 1.13 has no float16 ${TORCH1_NO_HALF[method]} on CPU), so --numerics mergekit-torch1.13 has no output to reproduce for tensor ${tensorName}; set dtype: bfloat16 or float32, or use --numerics mergekit or default`,
    );
  if (method !== "arcee_fusion") return;
  const numel = shape.reduce((x, y) => x * y, 1);
  if (numel > ARCEE_FUSION_SAMPLE_LIMIT)
    throw new ConfigError(
      "merge_method",
      `${modeName(torch)} does not reproduce arcee_fusion on tensor ${tensorName} (${numel} elements): above 10⁶ elements mergekit sorts an unseeded torch.randperm sample; use --numerics default`,
    );
}

/** The dtype mergekit writes a tensor in without `out_dtype`, when its method's result is not of the compute dtype. */
export function mergekitResultDtype(method: string): FloatDType | undefined {
  return MERGEKIT_NUMERICS_METHODS.get(method)?.resultF32 ? "F32" : undefined;
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
