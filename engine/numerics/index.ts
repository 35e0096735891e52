// Public entry point of @mergeloom/engine/numerics: what other packages may import.
export { NUMERICS_MODES, torchBuildOf } from "./numerics-mode.js";
export type { NumericsMode, TorchBuild } from "./numerics-mode.js";
export { MERGEKIT_NUMERICS_METHODS } from "./mergekit-methods.js";
// scripts/numerics/gen-rsqrt14-table.mjs regenerates the hardware table from this model
export { rsqrt14Predicted } from "./rsqrt14.js";
