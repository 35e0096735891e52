/**
 * A merge worker: competes for merge tasks on the work queue (through the shared TaskRuntime:
 * lease, heartbeat, outcome in the tasks bucket before the ack, retry or fail, drain) and runs each
 * on its thread pool. What is its own: the job-state and path checks, object-mode uploads, and
 * advertising itself in the workers bucket (entries expire with a TTL, so a dead worker disappears).
 */
import { execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { hostname, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { JobRecord } from "@mergeloom/proto/records";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import type { TaskOutcome, WireError, WorkerRecord } from "@mergeloom/proto/records";
import { headers as H, PROTOCOL_VERSION, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { ATTR_TENSOR_COUNT } from "@mergeloom/proto/tracing";
import { openKv } from "@mergeloom/transport";
import type { KvBucket, Transport } from "@mergeloom/transport";
import { ALL_METHODS } from "@mergeloom/engine/methods";
import { LocalMergeExecutor, type MergeExecutor } from "@mergeloom/engine/driver";
import type { HttpOptions } from "@mergeloom/engine/storage";
import type { WorkerMetrics } from "../ops/worker-metrics.js";
import { checkTaskPaths } from "./check-task-paths.js";
import { checkTaskOutput } from "./check-task-output.js";
import { readRecord, TaskRuntime, type TaskContext, type TaskDone, type TaskHandler } from "./task-runtime.js";

export const MERGELOOM_VERSION = "0.1.0";

export interface MergeWorkerOptions {
  transport: Transport;
  name?: string;
  /** Tasks processed at once (default 2: the next task's tensors fill threads the last tensors of the current one leave idle). */
  concurrency?: number;
  /** Merge threads (default: all cores; 0 = inline). */
  threads?: number;
  /** When set, tasks may only name paths under these directories. */
  storageRoots?: readonly string[];
  ackWaitMs?: number;
  maxDeliver?: number;
  backoffMs?: number[];
  /** How long the worker's registry entry lives without a refresh. */
  registryTtlMs?: number;
  metrics?: WorkerMetrics;
  executor?: MergeExecutor;
  /** Timeouts and retries for http(s) inputs (ignored when `executor` is given). */
  http?: HttpOptions;
  log?: (line: string) => void;
  /**
   * Fault injection for chaos and integration tests: sleep this long (heart-beating) before each
   * task, so a test can kill a worker or server while a task is in flight.
   */
  taskDelayMs?: number;
  /** Where object-mode tasks stage their outputs before upload (default: the OS temp dir). */
  scratchDir?: string;
}

export function detectGpu(): string | undefined {
  try {
    const out = execFileSync("nvidia-smi", ["--query-gpu=name,memory.total", "--format=csv,noheader"], { timeout: 3000, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    return out ? `cuda: ${out.split("\n").join("; ")}` : undefined;
  } catch {
    return undefined;
  }
}

export class MergeWorker {
  readonly name: string;
  private readonly opts: MergeWorkerOptions;
  private readonly executor: MergeExecutor;
  private readonly threads: number;
  private readonly runtime: TaskRuntime;
  private tasksKv?: KvBucket<TaskOutcome>;
  private jobsKv?: KvBucket<JobRecord>;
  private workersKv?: KvBucket<WorkerRecord>;
  private registryTimer?: NodeJS.Timeout;
  private started = 0;
  private readonly gpu = detectGpu();

  constructor(opts: MergeWorkerOptions) {
    this.opts = opts;
    this.name = opts.name ?? `${hostname()}-${process.pid}`;
    const exec = opts.executor ?? new LocalMergeExecutor({ threads: opts.threads, http: opts.http });
    this.executor = exec;
    this.threads = (exec as LocalMergeExecutor).threads ?? opts.threads ?? 0;
    this.runtime = new TaskRuntime({ ...opts, name: this.name });
  }

  /** True while the worker takes tasks (readiness). */
  get ready(): boolean {
    return this.runtime.ready;
  }

  get activeTasks(): number {
    return this.runtime.activeTasks;
  }

  async start(): Promise<void> {
    const t = this.opts.transport;
    this.started = Date.now();
    this.tasksKv = await this.runtime.bucket(buckets.tasks);
    this.jobsKv = await openKv(t, buckets.jobs);
    this.workersKv = await openKv(t, buckets.workers, { ttlMs: this.opts.registryTtlMs ?? 15_000 });
    await this.advertise();
    const every = Math.max(250, Math.floor((this.opts.registryTtlMs ?? 15_000) / 3));
    this.registryTimer = setInterval(() => void this.advertise().catch(() => {}), every);
    this.registryTimer.unref();
    await this.runtime.consume({
      subject: subjects.taskMerge,
      kind: "merge-task",
      outcomes: buckets.tasks,
      concurrency: this.concurrency,
      onRejected: (error, headers) => void this.reportRejected(error, headers),
      handler: this.handler(),
    });
    this.log(`worker ${this.name} ready: ${this.threads} merge threads, concurrency ${this.concurrency}${this.gpu ? `, ${this.gpu}` : ""}`);
  }

  private get concurrency(): number {
    return this.opts.concurrency ?? 2;
  }

  /**
   * A task refused before it could run (malformed, oversized, another protocol version): logged
   * here, and recorded as the task's failure when its headers say which job it belongs to, so the
   * coordinator fails with the reason instead of waiting.
   */
  private async reportRejected(error: WireError, headers: Record<string, string>): Promise<void> {
    const reason = error.message;
    const jobId = headers[H.jobId];
    const taskId = headers[H.taskId];
    this.log(`refused a task message${taskId ? ` (task ${taskId} of job ${jobId})` : ""}: ${reason}`);
    if (!jobId || !taskId || !this.tasksKv) return;
    await this.tasksKv
      .put(buckets.tasks.key(jobId, taskId), {
        jobId,
        taskId,
        ok: false,
        error: { code: error.code, message: `task ${taskId} refused by worker ${this.name}: ${reason}`, retryable: false },
        worker: this.name,
        attempt: 1,
        finishedAt: Date.now(),
      })
      .catch(() => {});
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private async advertise(): Promise<void> {
    if (!this.workersKv) return;
    const active = this.runtime.activeTasks;
    const rec: WorkerRecord = {
      workerId: this.name.replace(/[^A-Za-z0-9_-]/g, "_"),
      name: this.name,
      host: hostname(),
      pid: process.pid,
      version: MERGELOOM_VERSION,
      protocol: PROTOCOL_VERSION,
      concurrency: this.concurrency,
      activeTasks: active,
      status: this.runtime.draining ? "draining" : active ? "busy" : "idle",
      methods: ALL_METHODS.map((m) => m.name),
      startedAt: this.started,
      heartbeatAt: Date.now(),
      threads: this.threads,
      memoryBytes: totalmem(),
      ...(this.gpu ? { gpu: this.gpu } : {}),
    };
    await this.workersKv.put(rec.workerId, rec);
  }

  /** What the task runtime needs to know about a merge task. */
  private handler(): TaskHandler<MergeTask, TaskOutcome> {
    const describe = (task: MergeTask) => `task ${task.taskId} of job ${task.jobId}`;
    return {
      describe,
      detail: (task) => `${task.tensors.length} tensors`,
      label: (task) => `task ${task.taskId}`,
      rerun: "the merge",
      attributes: (task) => ({ [ATTR_TENSOR_COUNT]: task.tensors.length }),
      // A task of a cancelled or failed job does not run; nor one naming paths it may not touch.
      admit: async (task) => {
        const job = await readRecord(this.jobsKv!, task.jobId, describe(task), "the merge");
        if (job && (job.value.state === "cancelled" || job.value.state === "failed")) {
          throw new MergeloomError("CANCELLED", `task ${task.taskId} of job ${task.jobId}: the job is ${job.value.state}`);
        }
        if (this.opts.storageRoots) await checkTaskPaths(task, this.opts.storageRoots);
        await checkTaskOutput(task);
      },
      run: (task, ctx) => this.runTask(task, ctx),
      // Every final failure is recorded, except a cancelled job's (its record already says why).
      failed: (_task, _ctx, err) => (err instanceof MergeloomError && err.code === "CANCELLED" ? undefined : {}),
    };
  }

  private async runTask(task: MergeTask, ctx: TaskContext): Promise<TaskDone<TaskOutcome>> {
    const result = task.output === "object" ? await this.runToObject(task, ctx.signal) : await this.executor.run(task, { signal: ctx.signal });
    result.worker = this.name;
    return { outcome: { result }, durationMs: result.durationMs, bytesRead: result.bytesRead, bytesWritten: result.bytesWritten };
  }

  /**
   * No shared file system: merge into a local scratch file laid out like the task's tensors, upload
   * it as one object, delete it. The coordinator writes the bytes to the real offsets.
   */
  private async runToObject(task: MergeTask, signal: AbortSignal): Promise<MergeTaskResult> {
    const dir = await mkdtemp(join(this.opts.scratchDir ?? tmpdir(), "mergeloom-task-"));
    const scratch = join(dir, "out.bin");
    try {
      let offset = 0;
      const local: MergeTask = {
        ...task,
        output: "file",
        tensors: task.tensors.map((t) => {
          const dest = { uri: scratch, offset, byteLength: t.dest.byteLength };
          offset += t.dest.byteLength;
          return { ...t, dest };
        }),
      };
      await writeFile(scratch, "");
      await truncate(scratch, offset);
      const result = await this.executor.run(local, { signal });
      const outputs = await this.opts.transport.objects(buckets.outputs.name);
      await outputs.put(buckets.outputs.key(task.jobId, task.taskId), createReadStream(scratch, { highWaterMark: 8 << 20 }));
      return result;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Stops taking tasks. Graceful: in-flight tasks finish (until `timeoutMs`, then they are handed
   * back for redelivery). Not graceful: in-flight tasks are aborted and redelivered elsewhere.
   */
  async stop(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const drained = this.runtime.stop(opts); // marks the worker draining at once
    clearInterval(this.registryTimer);
    await this.advertise().catch(() => {});
    await drained;
    const id = this.name.replace(/[^A-Za-z0-9_-]/g, "_");
    await this.workersKv?.delete(id).catch(() => {});
    await this.executor.close();
  }
}
