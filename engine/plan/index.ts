// Public entry point of @mergeloom/engine/plan: what other packages may import.
export { buildPlan } from "./build-plan.js";
export type { PlannedTensor } from "./build-plan.js";
export { buildTasks } from "./build-tasks.js";
export { estimatePeakMemory } from "./estimate-memory.js";
export { resolveModelReference } from "./model-ref.js";
