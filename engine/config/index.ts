// Public entry point of @mergeloom/engine/config: what other packages may import.
export type { MergeConfig } from "./merge-config.js";
export { parseMergeConfig } from "./parse-merge-config.js";
export { yamlToJs } from "./yaml-to-js.js";
