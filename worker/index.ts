// Public entry point of @mergeloom/worker: what other packages may import.
export { startHealthServer } from "./ops/health-server.js";
export { WorkerMetrics } from "./ops/worker-metrics.js";
export { EvalWorker } from "./runtime/eval-worker.js";
export { MergeWorker } from "./runtime/merge-worker.js";
export { ScratchDir } from "./runtime/scratch-dir.js";
