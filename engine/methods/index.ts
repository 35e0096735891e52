// Public entry point of @mergeloom/engine/methods: what other packages may import.
export { ALL_METHODS, createDefaultRegistry } from "./all-methods.js";
export { MergeMethodRegistry } from "./merge-method-registry.js";
