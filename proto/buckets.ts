/**
 * The KV and object-store buckets both sides open: name, the message kind each entry holds, the
 * options (a bucket's config must match on every open, so they live here, once) and how keys
 * are formed. The transport opens a descriptor with `openKv` (transport package).
 */
import type { MessageKind } from "./schemas.js";

export interface KvOptions {
  /** Entries expire this long after their last write (the whole bucket shares the TTL). */
  ttlMs?: number;
  /** Revisions kept per key (default 1). */
  history?: number;
}

export interface KvBucketDescriptor<K extends MessageKind, Key extends unknown[]> {
  readonly name: string;
  /** Every entry is one message of this kind (validated on read and write). */
  readonly kind: K;
  readonly options: KvOptions;
  readonly key: (...parts: Key) => string;
}

export interface ObjectBucketDescriptor {
  readonly name: string;
  readonly key: (jobId: string, taskId: string) => string;
}

const jobTaskKey = (jobId: string, taskId: string): string => `${jobId}.${taskId}`;

export const buckets = {
  /** JobRecord per job id. */
  jobs: { name: "mergeloom-jobs", kind: "job", options: { history: 1 }, key: (jobId: string) => jobId },
  /** WorkerRecord per worker id; entries expire (TTL) when a worker stops heart-beating. */
  workers: { name: "mergeloom-workers", kind: "worker", options: { ttlMs: 15_000 }, key: (workerId: string) => workerId },
  /** TaskOutcome per `<jobId>.<taskId>`: the durable record of finished tasks (resume). */
  tasks: { name: "mergeloom-tasks", kind: "task-outcome", options: { history: 1 }, key: jobTaskKey },
  /** EvalOutcome per `<jobId>.<taskId>`: finished candidate evaluations (a resumed search reuses them). */
  evals: { name: "mergeloom-evals", kind: "eval-outcome", options: { history: 1, ttlMs: 7 * 24 * 3600_000 }, key: jobTaskKey },
  /** Task outputs (tensor bytes) when workers have no shared file system, one object per task. */
  outputs: { name: "mergeloom-outputs", key: jobTaskKey },
} as const satisfies {
  jobs: KvBucketDescriptor<"job", [string]>;
  workers: KvBucketDescriptor<"worker", [string]>;
  tasks: KvBucketDescriptor<"task-outcome", [string, string]>;
  evals: KvBucketDescriptor<"eval-outcome", [string, string]>;
  outputs: ObjectBucketDescriptor;
};
