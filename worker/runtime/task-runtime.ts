/**
 * The queue loop both workers share. For each queue it consumes a subject and runs the worker's
 * handler under the delivery's lease (heart-beaten, so long tasks are not redelivered); a task an
 * earlier delivery finished is acked without running; the outcome is recorded under the outcome
 * bucket's key BEFORE the ack (a restarted coordinator or a resumed search finds it); a failure is
 * retried unless the error is not `retryable` or this was the last delivery, and then recorded;
 * `stop` drains: in-flight tasks finish (or are handed back after a timeout).
 *
 * The handler brings only what is specific to its task kind: its checks, the work, and the
 * kind-specific fields of the outcome.
 */
import { errorMessage, isPermanent, ProtocolError } from "@mergeloom/proto/errors";
import { toWireError } from "@mergeloom/proto/wire-error";
import type { KvOptions } from "@mergeloom/proto/buckets";
import type { MessageMap } from "@mergeloom/proto/schemas";
import type { WireError } from "@mergeloom/proto/records";
import { ATTR_WORKER_NAME } from "@mergeloom/proto/tracing";
import { openKv } from "@mergeloom/transport";
import type { Delivery, KvBucket, KvEntry, Stoppable, Transport } from "@mergeloom/transport";
import { trace, type Attributes } from "@opentelemetry/api";
import type { WorkerMetrics } from "../ops/worker-metrics.js";

type TaskKind = "merge-task" | "eval-task";
type OutcomeKind = "task-outcome" | "eval-outcome";
/** Outcome fields the runtime fills in; the handler supplies the rest. */
type CommonField = "jobId" | "taskId" | "ok" | "error" | "worker" | "attempt" | "finishedAt";
export type OutcomeDetails<O> = Omit<O, CommonField>;

/** A proto bucket descriptor of outcomes, keyed by job and task id (buckets.tasks, buckets.evals). */
export interface OutcomeBucket<K extends OutcomeKind> {
  readonly name: string;
  readonly kind: K;
  readonly options: KvOptions;
  readonly key: (jobId: string, taskId: string) => string;
}

export interface TaskRuntimeOptions {
  transport: Transport;
  /** The worker's name, recorded in outcomes and failure messages. */
  name: string;
  ackWaitMs?: number;
  maxDeliver?: number;
  backoffMs?: number[];
  metrics?: WorkerMetrics;
  log?: (line: string) => void;
  /** Fault injection (tests): sleep this long, heart-beating, before each task runs. */
  taskDelayMs?: number;
}

export interface TaskContext {
  /** 1 on the first delivery. */
  attempt: number;
  maxDeliver: number;
  /** Aborts when the lease lapsed or the worker stopped without grace. */
  signal: AbortSignal;
  /** `performance.now()` when the delivery arrived. */
  startedAt: number;
}

export interface TaskDone<O> {
  /** The outcome's task-specific fields (`result`, `scores`, ...). */
  outcome: OutcomeDetails<O>;
  /** Shown in the log line `... done in N ms`. */
  durationMs: number;
  /** Appended to that line in parentheses (e.g. the execution provider). */
  note?: string;
  bytesRead?: number;
  bytesWritten?: number;
}

export interface TaskHandler<T, O> {
  /** How log lines name the task: `task t1 of job j1`. */
  describe(task: T): string;
  /** Shown after the attempt when the task starts: `12 tensors`, `candidate c3`. */
  detail(task: T): string;
  /** How failure messages start, before `on worker W (attempt a/n)`: `task t1`, `evaluate candidate c3`. */
  label(task: T): string;
  /** What to rerun when a record does not decode (`the merge`, `the search`). */
  rerun: string;
  /** Checks before the task starts, run alongside the read of its earlier outcome: throw to fail the task. */
  admit?(task: T): Promise<void>;
  /** Does the work. */
  run(task: T, ctx: TaskContext): Promise<TaskDone<O>>;
  /** The outcome's task-specific fields when the task fails for good; undefined records no outcome. */
  failed(task: T, ctx: TaskContext, err: unknown): OutcomeDetails<O> | undefined;
  /** Span attributes of the `process <subject>` span (the worker's name is always set). */
  attributes?(task: T): Attributes;
}

export interface TaskQueue<K extends TaskKind, OK extends OutcomeKind> {
  subject: string;
  kind: K;
  /** Where outcomes are recorded, keyed by job and task id. */
  outcomes: OutcomeBucket<OK>;
  concurrency: number;
  durable?: string;
  /** A message refused before the handler ran (malformed, another protocol version). */
  onRejected?: (error: WireError, headers: Record<string, string>) => void;
  handler: TaskHandler<MessageMap[K], MessageMap[OK]>;
}

export class TaskRuntime {
  private readonly consumers: Stoppable[] = [];
  private readonly buckets = new Map<string, Promise<KvBucket<unknown>>>();
  private active = 0;
  private stopping = false;

  constructor(private readonly opts: TaskRuntimeOptions) {}

  /** True while the runtime takes tasks (readiness). */
  get ready(): boolean {
    return this.consumers.length > 0 && !this.stopping;
  }

  get draining(): boolean {
    return this.stopping;
  }

  get activeTasks(): number {
    return this.active;
  }

  /** The bucket of a descriptor, opened once per runtime. */
  bucket<K extends OutcomeKind>(descriptor: OutcomeBucket<K>): Promise<KvBucket<MessageMap[K]>> {
    let b = this.buckets.get(descriptor.name);
    if (!b) {
      b = openKv(this.opts.transport, descriptor) as Promise<KvBucket<unknown>>;
      this.buckets.set(descriptor.name, b);
    }
    return b as Promise<KvBucket<MessageMap[K]>>;
  }

  /** Starts consuming `queue`. */
  async consume<K extends TaskKind, OK extends OutcomeKind>(queue: TaskQueue<K, OK>): Promise<void> {
    const outcomes = await this.bucket(queue.outcomes);
    const consumer = await this.opts.transport.consume(queue.subject, queue.kind, (d) => this.handle(queue, outcomes, d), {
      concurrency: queue.concurrency,
      ackWaitMs: this.ackWaitMs,
      maxDeliver: this.opts.maxDeliver ?? 5,
      backoffMs: this.opts.backoffMs ?? [1000, 5000, 15000],
      ...(queue.durable ? { durable: queue.durable } : {}),
      ...(queue.onRejected ? { onRejected: queue.onRejected } : {}),
    });
    this.consumers.push(consumer);
  }

  private get ackWaitMs(): number {
    return this.opts.ackWaitMs ?? 30_000;
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private async handle<K extends TaskKind, OK extends OutcomeKind>(
    queue: TaskQueue<K, OK>,
    outcomes: KvBucket<MessageMap[OK]>,
    d: Delivery<MessageMap[K]>,
  ): Promise<void> {
    const { handler } = queue;
    const task = d.body;
    const key = queue.outcomes.key(task.jobId, task.taskId);
    const ctx: TaskContext = { attempt: d.attempt, maxDeliver: d.maxDeliver, signal: d.signal, startedAt: performance.now() };
    const name = this.opts.name;
    this.opts.metrics?.taskStarted(d.attempt);
    trace.getActiveSpan()?.setAttributes({ [ATTR_WORKER_NAME]: name, ...handler.attributes?.(task) });
    this.active++;
    const beat = setInterval(() => d.heartbeat(), Math.max(100, Math.floor(this.ackWaitMs / 3)));
    const record = (fields: object) =>
      outcomes.put(key, { jobId: task.jobId, taskId: task.taskId, ...fields, worker: name, attempt: d.attempt, finishedAt: Date.now() } as MessageMap[OK]);
    try {
      // Both reads at once (one round trip per task); a finished task is acked whatever the checks say.
      const [prev, admitted] = await Promise.allSettled([readRecord(outcomes, key, handler.describe(task), handler.rerun), handler.admit?.(task)]);
      if (prev.status === "rejected") throw prev.reason;
      if (prev.value?.value.ok) return; // a duplicate of a finished task (coordinator restarted): nothing to do
      if (admitted.status === "rejected") throw admitted.reason;
      this.log(`${handler.describe(task)} started (attempt ${d.attempt}, ${handler.detail(task)})`);
      if (this.opts.taskDelayMs) await abortableSleep(this.opts.taskDelayMs, d.signal);
      const done = await handler.run(task, ctx);
      this.log(`${handler.describe(task)} done in ${Math.round(done.durationMs)} ms${done.note ? ` (${done.note})` : ""}`);
      await record({ ok: true, ...done.outcome });
      this.opts.metrics?.taskFinished(performance.now() - ctx.startedAt, done.bytesRead ?? 0, done.bytesWritten ?? 0);
    } catch (err) {
      this.opts.metrics?.taskFailed();
      const final = isPermanent(err) || d.attempt >= d.maxDeliver;
      const wire: WireError = toWireError(err);
      wire.message = `${handler.label(task)} on worker ${name} (attempt ${d.attempt}/${d.maxDeliver}): ${wire.message}`;
      this.log(`${final ? "failed" : "retrying"} ${wire.message}`);
      const details = final ? handler.failed(task, ctx, err) : undefined;
      if (details) await record({ ok: false, error: wire, ...details }).catch((e) => this.log(`could not record failure of ${key}: ${errorMessage(e)}`));
      throw err;
    } finally {
      clearInterval(beat);
      this.active--;
    }
  }

  /**
   * Stops taking tasks. Graceful (default): in-flight tasks finish (until `timeoutMs`, then they are
   * handed back for redelivery). Not graceful: in-flight tasks are aborted and redelivered elsewhere.
   * `draining` is true as soon as this is called.
   */
  async stop(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.stopping = true;
    const all = this.consumers.splice(0);
    await Promise.all(
      all.map(async (consumer) => {
        if (opts.graceful === false) return consumer.stop({ abort: true });
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), opts.timeoutMs ?? 60_000)));
        const res = await Promise.race([consumer.stop().then(() => "done" as const), timeout]);
        clearTimeout(timer);
        if (res === "timeout") await consumer.stop({ abort: true });
      }),
    );
  }
}

/** A record that does not decode fails the task (and so its job) with the reason, never the worker. */
export async function readRecord<T>(kv: KvBucket<T>, key: string, what: string, rerun: string): Promise<KvEntry<T> | null> {
  try {
    return await kv.get(key);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    throw new ProtocolError(
      `${what}: record ${kv.name}/${key} is unreadable (${err.message}); it was not written by this mergeloom version, run ${rerun} again`,
      "MESSAGE_INVALID",
    );
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}
