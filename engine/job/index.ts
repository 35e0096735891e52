// Public entry point of @mergeloom/engine/job: what other packages may import.
export { LocalDispatcher } from "./local-dispatcher.js";
export type { MergeEvent, MergeEventSink } from "./merge-events.js";
export { deriveJobId, loadConfig, planMerge, runMergeJob } from "./run-merge-job.js";
export type { TaskDispatcher } from "./run-merge-job.js";
