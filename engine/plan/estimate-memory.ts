/**
 * Peak memory estimate for a merge: each busy thread holds one job's inputs in their stored dtype
 * (scratch) and in fp32, plus the fp32 result and the encoded output. Elementwise methods are
 * chunked and streamed methods hold a row chunk (plus, for bf16 inputs, the tensor's bytes up to
 * the per-thread cache budget), so only tensors merged whole pay for their full size.
 */
import { DTYPE_BYTES, numelOf } from "@mergeloom/proto/dtype";
import type { MergeMethod } from "../methods/define-merge-method.js";
import { rowElems, STREAM_CACHE_BYTES, STREAM_CHUNK_ELEMENTS } from "../driver/merge-tensor.js";
import type { MergePlan, PlannedTensor } from "./build-plan.js";
import { CHUNK_ELEMENTS } from "../driver/run-merge-task.js";
import { isElementwiseMergekit } from "../numerics/merge-mergekit.js";

/** Baseline of a Node process with the merge code loaded. */
const PROCESS_BASE = 120 * 2 ** 20;

export function estimatePeakMemory(plan: MergePlan, threads: number): number {
  let perJob = 0;
  const elementwise = typeof plan.method.elementwise === "boolean" ? plan.method.elementwise : false;
  for (const t of plan.tensors) {
    const total = numelOf(t.shape);
    let numel = total;
    let cache = 0;
    let mergekitExtra = 0;
    if (t.computeDtype) {
      // --numerics mergekit: row chunks when elementwise, else the whole tensor plus one working
      // copy per model (task vectors) and torch's sort of |δ| (fp32 keys + int32 indices).
      if (isElementwiseMergekit(t)) numel = Math.min(CHUNK_ELEMENTS, total);
      else mergekitExtra = total * (4 * t.inputs.length + 9);
    } else if (elementwise) numel = Math.min(CHUNK_ELEMENTS, total);
    else if (total > STREAM_CHUNK_ELEMENTS && streams(plan.method, t, total)) {
      const row = rowElems(t.shape);
      numel = Math.min(total, Math.max(row, Math.floor(STREAM_CHUNK_ELEMENTS / row) * row));
      if (t.inputs.every((i) => i.source.dtype === "BF16")) cache = Math.min(STREAM_CACHE_BYTES, total * 2 * t.inputs.length);
    }
    let bytes = cache + mergekitExtra;
    for (const i of t.inputs) bytes += numel * (DTYPE_BYTES[i.source.dtype] + 4) * (1 + (i.addVectors?.length ?? 0));
    bytes += numel * (4 + DTYPE_BYTES[t.outDtype]) + numel * 4; // result + encoded + method temporaries
    perJob = Math.max(perJob, bytes);
  }
  return PROCESS_BASE + Math.max(1, threads) * perJob;
}

/** True when the method merges this tensor in row chunks (its streaming form accepts it). */
function streams(method: MergeMethod, t: PlannedTensor, numel: number): boolean {
  if (!method.streaming || t.shape.length === 0) return false;
  try {
    return method.streaming({ tensorName: t.name, shape: t.shape, inputs: t.inputs, baseIndex: t.baseIndex, params: t.params, numel }) !== undefined;
  } catch {
    return false; // the merge itself reports the parameter error
  }
}
