// Public entry point of @mergeloom/engine/storage: what other packages may import.
export { CheckpointCache } from "./checkpoint-cache.js";
export { openCheckpoint } from "./checkpoint.js";
export type { CheckpointTensor } from "./checkpoint.js";
export { DEFAULT_HTTP_RETRIES, DEFAULT_HTTP_TIMEOUT_MS, HttpByteSource, backoffDelayMs } from "./http-byte-source.js";
export type { HttpOptions } from "./http-byte-source.js";
export { downloadModel } from "./hub/download-model.js";
export { isHubUri, parsePinnedHubUri } from "./hub/hub-reference.js";
export { configureHub, hubSettingsFromEnv } from "./hub/hub-settings.js";
export { openModel } from "./hub/open-model.js";
export { resolveModelReference } from "./hub/resolve-model-reference.js";
export { assertInsideRoots } from "./storage-roots.js";
export { openSyntheticCheckpoint } from "./synthetic-checkpoint.js";
export { openByteSource } from "./open-byte-source.js";
export { useHubHttpOptions } from "./hub/hub-byte-source.js";
