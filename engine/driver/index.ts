// Public entry point of @mergeloom/engine/driver: what other packages may import.
export { InMemoryMerger } from "./merge-in-memory.js";
export type { MergedTensor } from "./merge-in-memory.js";
export { createRemoteReader } from "./remote-reader.js";
export { LocalMergeExecutor } from "./run-merge-task.js";
export type { MergeExecutor } from "./run-merge-task.js";
export { TensorIO, localPath } from "./tensor-io.js";
