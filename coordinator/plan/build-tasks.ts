/**
 * Cuts a plan into tasks: output shards are laid out first (so every tensor has a fixed file and
 * offset), then consecutive layers are grouped into tasks balanced by bytes. A task writes its
 * tensors at their final offsets, so tasks can run anywhere, in any order, any number of times.
 */
import { join } from "node:path";
import { DTYPE_BYTES, numelOf } from "../../proto/dtype.js";
import type { MergeTask, TensorTask } from "../../proto/merge-task.js";
import { layoutShards, type ShardPlan } from "../../worker/storage/shard-layout.js";
import type { MergePlan, PlannedTensor } from "./build-plan.js";

export interface TaskSet {
  shards: ShardPlan[];
  tasks: MergeTask[];
}

export interface TaskOptions {
  jobId: string;
  seed: number;
  maxShardBytes: number;
  /** Directory the shards are written to, or `discard://` to checksum instead. */
  outDir: string;
  /** Target bytes of output per task; layers are never split. Default: one layer group per task. */
  taskBytes?: number;
  /** How workers deliver outputs: "file" (shared volume, default) or "object" (NATS object store). */
  output?: "file" | "object";
}

export function tensorBytes(t: Pick<PlannedTensor, "shape" | "outDtype">): number {
  return numelOf(t.shape) * DTYPE_BYTES[t.outDtype];
}

export function buildTasks(plan: MergePlan, opts: TaskOptions): TaskSet {
  const shards = layoutShards(
    plan.tensors.map((t) => ({ name: t.name, dtype: t.outDtype, shape: t.shape })),
    opts.maxShardBytes,
  );
  const where = new Map<string, { file: string; offset: number; byteLength: number }>();
  for (const s of shards) for (const e of s.entries) where.set(e.name, { file: s.file, offset: e.offset, byteLength: e.byteLength });
  const discard = opts.outDir.startsWith("discard://");

  // Group by output layer (pre weights, each layer, post weights), then merge small neighbours.
  const groups: PlannedTensor[][] = [];
  let key: number | undefined;
  for (const t of plan.tensors) {
    if (t.layer !== key) {
      groups.push([]);
      key = t.layer;
    }
    groups[groups.length - 1].push(t);
  }
  const target = opts.taskBytes ?? 0;
  const merged: PlannedTensor[][] = [];
  let acc: PlannedTensor[] = [];
  let accBytes = 0;
  for (const g of groups) {
    const b = g.reduce((s, t) => s + tensorBytes(t), 0);
    if (acc.length && accBytes + b > target) {
      merged.push(acc);
      acc = [];
      accBytes = 0;
    }
    acc.push(...g);
    accBytes += b;
  }
  if (acc.length) merged.push(acc);

  const tasks: MergeTask[] = merged.map((group, i) => ({
    jobId: opts.jobId,
    taskId: `t${String(i).padStart(5, "0")}`,
    seed: opts.seed,
    ...(opts.output === "object" ? { output: "object" as const } : {}),
    tensors: group.map((t): TensorTask => {
      const w = where.get(t.name)!;
      return {
        name: t.name,
        shape: t.shape,
        outDtype: t.outDtype,
        method: t.method,
        params: t.params,
        inputs: t.inputs,
        baseIndex: t.baseIndex,
        ...(t.vocab ? { vocab: t.vocab } : {}),
        dest: { uri: discard ? "discard://" : join(opts.outDir, w.file), offset: w.offset, byteLength: w.byteLength },
      };
    }),
  }));
  return { shards, tasks };
}
