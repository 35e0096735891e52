/**
 * Cuts a plan into tasks: output shards are laid out first (so every tensor has a fixed file and
 * offset), then consecutive layers are grouped into tasks balanced by bytes. A task writes its
 * tensors at their final offsets, so tasks can run anywhere, in any order, any number of times.
 */
import { join } from "node:path";
import { encodedMessageBytes, MAX_MESSAGE_BYTES } from "@mergeloom/proto/codec";
import { DTYPE_BYTES, numelOf } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { MergeTask, TensorTask } from "@mergeloom/proto/merge-task";
import { layoutShards, type ShardPlan } from "../output/shard-layout.js";
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
  /**
   * Largest encoded task message the transport carries (default MAX_MESSAGE_BYTES, NATS's default
   * max_payload; Infinity in-process). A layer's task over it is split by tensor; a single tensor
   * over it fails the plan.
   */
  maxMessageBytes?: number;
}

/** Room left in a message for the NATS headers (job and task ids, trace context). */
const HEADER_ROOM = 4096;

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

  const toTask = (t: PlannedTensor): TensorTask => {
    const w = where.get(t.name)!;
    return {
      name: t.name,
      shape: t.shape,
      outDtype: t.outDtype,
      method: t.method,
      params: t.params,
      inputs: t.inputs,
      baseIndex: t.baseIndex,
      ...(t.computeDtype ? { computeDtype: t.computeDtype } : {}),
      ...(t.computeTorch ? { computeTorch: t.computeTorch } : {}),
      ...(t.vocab ? { vocab: t.vocab } : {}),
      dest: { uri: discard ? "discard://" : join(opts.outDir, w.file), offset: w.offset, byteLength: w.byteLength },
    };
  };
  const envelope = (tensors: TensorTask[]): MergeTask => ({
    jobId: opts.jobId,
    taskId: "t00000",
    seed: opts.seed,
    ...(opts.output === "object" ? { output: "object" as const } : {}),
    tensors,
  });
  const groupsOfTasks = fitMessages(
    merged.map((g) => g.map(toTask)),
    envelope,
    opts.maxMessageBytes ?? MAX_MESSAGE_BYTES,
  );
  const tasks: MergeTask[] = groupsOfTasks.map((tensors, i) => ({ ...envelope(tensors), taskId: `t${String(i).padStart(5, "0")}` }));
  return { shards, tasks };
}

/**
 * Keeps every task message under the transport's limit: a group over it is split into runs of
 * tensors that fit (by the tensors' own encoded sizes, which add up); a tensor that alone is too
 * big — thousands of models in one merge — fails the plan, saying what to change.
 */
function fitMessages(groups: TensorTask[][], envelope: (t: TensorTask[]) => MergeTask, maxMessageBytes: number): TensorTask[][] {
  if (!Number.isFinite(maxMessageBytes)) return groups;
  const budget = maxMessageBytes - HEADER_ROOM;
  const empty = encodedMessageBytes("merge-task", envelope([]));
  const out: TensorTask[][] = [];
  for (const g of groups) {
    if (encodedMessageBytes("merge-task", envelope(g)) <= budget) {
      out.push(g);
      continue;
    }
    let run: TensorTask[] = [];
    let size = empty;
    for (const t of g) {
      const own = encodedMessageBytes("merge-task", envelope([t])) - empty;
      if (empty + own > budget) {
        const perInput = Math.max(1, Math.ceil(own / Math.max(1, t.inputs.length)));
        throw new MergeloomError(
          "CONFIG_INVALID",
          `plan ${t.name}: its task message would be ${empty + own} bytes (${t.inputs.length} inputs), over the ${maxMessageBytes}-byte message limit of the task queue (NATS max_payload); ` +
            `merge at most about ${Math.floor((budget - empty) / perInput)} models at once (merge groups of models, then merge the results), or run without --nats`,
        );
      }
      if (run.length && size + own + 8 > budget) {
        out.push(run);
        run = [];
        size = empty;
      }
      run.push(t);
      size += own + 8; // + room for the array's length prefix growing
    }
    if (run.length) out.push(run);
  }
  return out;
}
