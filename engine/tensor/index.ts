// Public entry point of @mergeloom/engine/tensor: what other packages may import.
export { decodeToF32, encodeFromF32 } from "./convert.js";
export { createRandom, hashKey } from "./random.js";
export { buildSafetensorsHeader, parseHeaderLength, parseSafetensorsHeader } from "./safetensors.js";
export type { HeaderEntryInput } from "./safetensors.js";
