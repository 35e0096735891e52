/**
 * A merge worker: competes for merge tasks on the work queue, runs each on its thread pool,
 * records the outcome in the tasks bucket and acks. It advertises itself in the workers bucket
 * (entries expire with a TTL, so a dead worker disappears) and heart-beats in-progress tasks so
 * long ones are not redelivered.
 */
import { execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { hostname, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { errorMessage, isPermanent, MergeloomError, ProtocolError } from "@mergeloom/proto";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto";
import type { TaskOutcome, WireError, WorkerRecord } from "@mergeloom/proto";
import { headers as H, PROTOCOL_VERSION, subjects } from "@mergeloom/proto";
import { buckets } from "@mergeloom/proto";
import { openKv } from "@mergeloom/transport";
import type { Delivery, KvBucket, KvEntry, Stoppable, Transport } from "@mergeloom/transport";
import { toWireError } from "@mergeloom/proto";
import { ALL_METHODS } from "@mergeloom/engine/methods";
import { LocalMergeExecutor, type MergeExecutor } from "@mergeloom/engine/driver";
import type { HttpOptions } from "@mergeloom/engine/storage";
import type { WorkerMetrics } from "../ops/worker-metrics.js";
import { checkTaskPaths } from "./check-task-paths.js";
import { checkTaskOutput } from "./check-task-output.js";
import { trace } from "@opentelemetry/api";
import { ATTR_TENSOR_COUNT, ATTR_WORKER_NAME } from "@mergeloom/proto";

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
  private consumer?: Stoppable;
  private tasksKv?: KvBucket<TaskOutcome>;
  private jobsKv?: KvBucket<import("@mergeloom/proto").JobRecord>;
  private workersKv?: KvBucket<WorkerRecord>;
  private registryTimer?: NodeJS.Timeout;
  private active = 0;
  private draining = false;
  private started = 0;
  private readonly gpu = detectGpu();

  constructor(opts: MergeWorkerOptions) {
    this.opts = opts;
    this.name = opts.name ?? `${hostname()}-${process.pid}`;
    const exec = opts.executor ?? new LocalMergeExecutor({ threads: opts.threads, http: opts.http });
    this.executor = exec;
    this.threads = (exec as LocalMergeExecutor).threads ?? opts.threads ?? 0;
  }

  /** True while the worker takes tasks (readiness). */
  get ready(): boolean {
    return !!this.consumer && !this.draining;
  }

  get activeTasks(): number {
    return this.active;
  }

  async start(): Promise<void> {
    const t = this.opts.transport;
    this.started = Date.now();
    this.tasksKv = await openKv(t, buckets.tasks);
    this.jobsKv = await openKv(t, buckets.jobs);
    this.workersKv = await openKv(t, buckets.workers, { ttlMs: this.opts.registryTtlMs ?? 15_000 });
    await this.advertise();
    const every = Math.max(250, Math.floor((this.opts.registryTtlMs ?? 15_000) / 3));
    this.registryTimer = setInterval(() => void this.advertise().catch(() => {}), every);
    this.registryTimer.unref();
    this.consumer = await t.consume(subjects.taskMerge, "merge-task", (d) => this.handle(d), {
      concurrency: this.opts.concurrency ?? 2,
      ackWaitMs: this.opts.ackWaitMs ?? 30_000,
      maxDeliver: this.opts.maxDeliver ?? 5,
      backoffMs: this.opts.backoffMs ?? [1000, 5000, 15000],
      onRejected: (error, headers) => void this.reportRejected(error, headers),
    });
    this.log(`worker ${this.name} ready: ${this.threads} merge threads, concurrency ${this.opts.concurrency ?? 2}${this.gpu ? `, ${this.gpu}` : ""}`);
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
    const rec: WorkerRecord = {
      workerId: this.name.replace(/[^A-Za-z0-9_-]/g, "_"),
      name: this.name,
      host: hostname(),
      pid: process.pid,
      version: MERGELOOM_VERSION,
      protocol: PROTOCOL_VERSION,
      concurrency: this.opts.concurrency ?? 2,
      activeTasks: this.active,
      status: this.draining ? "draining" : this.active ? "busy" : "idle",
      methods: ALL_METHODS.map((m) => m.name),
      startedAt: this.started,
      heartbeatAt: Date.now(),
      threads: this.threads,
      memoryBytes: totalmem(),
      ...(this.gpu ? { gpu: this.gpu } : {}),
    };
    await this.workersKv.put(rec.workerId, rec);
  }

  private async handle(d: Delivery<MergeTask>): Promise<void> {
    const task = d.body;
    const key = buckets.tasks.key(task.jobId, task.taskId);
    const started = performance.now();
    this.opts.metrics?.taskStarted(d.attempt);
    trace.getActiveSpan()?.setAttributes({ [ATTR_WORKER_NAME]: this.name, [ATTR_TENSOR_COUNT]: task.tensors.length });
    this.active++;
    const beat = setInterval(() => d.heartbeat(), Math.max(100, Math.floor((this.opts.ackWaitMs ?? 30_000) / 3)));
    try {
      // A record that does not decode fails this task (and so its job) with the reason, never the worker.
      const [prev, job] = await Promise.all([readRecord(this.tasksKv!, key, task), readRecord(this.jobsKv!, task.jobId, task)]);
      if (prev?.value.ok) return; // a duplicate of a finished task (coordinator restarted): nothing to do
      if (job && (job.value.state === "cancelled" || job.value.state === "failed")) {
        throw new MergeloomError("CANCELLED", `task ${task.taskId} of job ${task.jobId}: the job is ${job.value.state}`);
      }
      if (this.opts.storageRoots) await checkTaskPaths(task, this.opts.storageRoots);
      await checkTaskOutput(task);
      this.log(`task ${task.taskId} of job ${task.jobId} started (attempt ${d.attempt}, ${task.tensors.length} tensors)`);
      if (this.opts.taskDelayMs) await abortableSleep(this.opts.taskDelayMs, d.signal);
      const result = task.output === "object" ? await this.runToObject(task, d.signal) : await this.executor.run(task, { signal: d.signal });
      result.worker = this.name;
      this.log(`task ${task.taskId} of job ${task.jobId} done in ${Math.round(result.durationMs)} ms`);
      await this.tasksKv!.put(key, { jobId: task.jobId, taskId: task.taskId, ok: true, result, worker: this.name, attempt: d.attempt, finishedAt: Date.now() });
      this.opts.metrics?.taskFinished(performance.now() - started, result.bytesRead, result.bytesWritten);
    } catch (err) {
      this.opts.metrics?.taskFailed();
      const final = isPermanent(err) || d.attempt >= d.maxDeliver;
      const wire = toWireError(err);
      wire.message = `task ${task.taskId} on worker ${this.name} (attempt ${d.attempt}/${d.maxDeliver}): ${wire.message}`;
      this.log(`${final ? "failed" : "retrying"} ${wire.message}`);
      if (final && !(err instanceof MergeloomError && err.code === "CANCELLED")) {
        await this.tasksKv!
          .put(key, { jobId: task.jobId, taskId: task.taskId, ok: false, error: wire, worker: this.name, attempt: d.attempt, finishedAt: Date.now() })
          .catch((e) => this.log(`could not record failure of ${key}: ${errorMessage(e)}`));
      }
      throw err;
    } finally {
      clearInterval(beat);
      this.active--;
    }
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
    this.draining = true;
    clearInterval(this.registryTimer);
    await this.advertise().catch(() => {});
    const consumer = this.consumer;
    this.consumer = undefined;
    if (consumer) {
      if (opts.graceful === false) await consumer.stop({ abort: true });
      else {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), opts.timeoutMs ?? 60_000)));
        const res = await Promise.race([consumer.stop().then(() => "done" as const), timeout]);
        clearTimeout(timer);
        if (res === "timeout") await consumer.stop({ abort: true });
      }
    }
    const id = this.name.replace(/[^A-Za-z0-9_-]/g, "_");
    await this.workersKv?.delete(id).catch(() => {});
    await this.executor.close();
  }
}

async function readRecord<T>(kv: KvBucket<T>, key: string, task: MergeTask): Promise<KvEntry<T> | null> {
  try {
    return await kv.get(key);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    throw new ProtocolError(`task ${task.taskId} of job ${task.jobId}: record ${kv.name}/${key} is unreadable (${err.message}); it was not written by this mergeloom version, run the merge again`, "MESSAGE_INVALID");
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}
