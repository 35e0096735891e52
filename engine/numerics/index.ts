// Public entry point of @mergeloom/engine/numerics: what other packages may import.
export { NUMERICS_MODES } from "./numerics-mode.js";
export type { NumericsMode } from "./numerics-mode.js";
