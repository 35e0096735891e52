/**
 * Peak memory estimate for a merge: each busy thread holds one job's inputs in their stored dtype
 * (scratch) and in fp32, plus the fp32 result and the encoded output. Elementwise methods are
 * chunked, so only whole-tensor methods pay for their largest tensor.
 */
import { DTYPE_BYTES, numelOf } from "../../proto/dtype.js";
import type { MergePlan } from "./build-plan.js";
import { CHUNK_ELEMENTS } from "../../worker/merge/run-merge-task.js";

/** Baseline of a Node process with the merge code loaded. */
const PROCESS_BASE = 120 * 2 ** 20;

export function estimatePeakMemory(plan: MergePlan, threads: number): number {
  let perJob = 0;
  const elementwise = typeof plan.method.elementwise === "boolean" ? plan.method.elementwise : false;
  for (const t of plan.tensors) {
    const numel = elementwise ? Math.min(CHUNK_ELEMENTS, numelOf(t.shape)) : numelOf(t.shape);
    let bytes = 0;
    for (const i of t.inputs) bytes += numel * (DTYPE_BYTES[i.source.dtype] + 4) * (1 + (i.addVectors?.length ?? 0));
    bytes += numel * (4 + DTYPE_BYTES[t.outDtype]) + numel * 4; // result + encoded + method temporaries
    perJob = Math.max(perJob, bytes);
  }
  return PROCESS_BASE + Math.max(1, threads) * perJob;
}
