/**
 * Runs one MergeTask: splits it into per-tensor (or per-row-chunk) jobs, runs them on a thread
 * pool (or inline with threads = 0), and collects the result. Memory stays bounded because a job
 * only describes its inputs; bytes are read inside the thread that merges them.
 */
import { createHash } from "node:crypto";
import { context, trace, type Attributes } from "@opentelemetry/api";
import { ATTR_BYTES_READ, ATTR_BYTES_WRITTEN, ATTR_JOB_ID, ATTR_TASK_ID, ATTR_TENSOR_COUNT, mergeloomTracer, SPAN_NAMES } from "@mergeloom/proto/tracing";
import { availableParallelism } from "node:os";
import { Piscina, queueOptionsSymbol } from "piscina";
import { numelOf } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { MergeTask, MergeTaskResult, TensorResult, TensorTask } from "@mergeloom/proto/merge-task";
import { createDefaultRegistry } from "../methods/all-methods.js";
import { isElementwise, mergeTensor, type StageTimes, rowElems, rowsOf, type TensorJob, type TensorJobResult } from "./merge-tensor.js";
import type { MergeMethodRegistry } from "../methods/merge-method-registry.js";
import { localPath, TensorIO } from "./tensor-io.js";
import type { ThreadReply } from "./tensor-thread.js";
import { fromWireError } from "@mergeloom/proto/wire-error";
import { createRemoteReader } from "./remote-reader.js";
import { countedMergeTensor } from "./counted-merge-tensor.js";
import { pickThread } from "./pick-thread.js";
import type { HttpOptions } from "../storage/http-byte-source.js";

/** Row chunks of about this many elements; fixed (not thread-dependent) so results never change. */
export const CHUNK_ELEMENTS = 1 << 22;

/** Jobs a thread holds: one merging, the next one fetching its remote inputs meanwhile (tensor-thread.ts). */
const JOBS_PER_THREAD = 2;
/** What the load balancer sees of a job (piscina's queue options: not sent to the thread). */
interface Queueing {
  remote: boolean;
}

/** True when the job reads an input (or added vector) that is not a local file: Hub, URL, synthetic. */
function readsRemote(job: TensorJob): boolean {
  return job.tensor.inputs.some((i) => [i.source, ...(i.addVectors ?? []).map((v) => v.source)].some((s) => localPath(s.uri) === undefined));
}

/**
 * What piscina rejects a thread's jobs with when it terminates the thread (an abort, or the pool's
 * destroy): its own message, no code. thread-abort-resubmit.test.ts fails if a piscina update changes it.
 */
const THREAD_TERMINATED = "Terminating worker thread";
/** Resubmissions of one job whose thread was terminated for other jobs' aborts. */
const MAX_RESUBMITS = 8;

export interface RunOptions {
  signal?: AbortSignal;
  /** Called after each tensor completes, with its output byte count. */
  onTensor?: (name: string, bytes: number, bytesRead: number) => void;
}

export interface MergeExecutor {
  run(task: MergeTask, opts?: RunOptions): Promise<MergeTaskResult>;
  close(): Promise<void>;
}

/** Splits a tensor into jobs: row chunks for elementwise methods, else the whole tensor. */
export function jobsFor(tensor: TensorTask, seed: number, registry: MergeMethodRegistry): TensorJob[] {
  const numel = numelOf(tensor.shape);
  if (numel <= CHUNK_ELEMENTS || !registry.has(tensor.method) || !isElementwise(registry.get(tensor.method), tensor)) {
    return [{ tensor, seed }];
  }
  const rows = rowsOf(tensor.shape);
  const per = Math.max(1, Math.floor(CHUNK_ELEMENTS / rowElems(tensor.shape)));
  const jobs: TensorJob[] = [];
  for (let r = 0; r < rows; r += per) jobs.push({ tensor, seed, rows: [r, Math.min(rows, r + per)] });
  return jobs;
}

export class LocalMergeExecutor implements MergeExecutor {
  private pool?: Piscina;
  private readonly registry: MergeMethodRegistry;
  private readonly io?: TensorIO;
  private readonly http: HttpOptions;

  /** threads: worker threads to use; 0 merges in the calling thread (tests, tiny models). */
  /** http: timeouts and retries for http(s) inputs (handed to every merge thread). */
  constructor(opts: { threads?: number; http?: HttpOptions } = {}) {
    const threads = opts.threads ?? availableParallelism();
    this.threads = threads;
    this.http = opts.http ?? {};
    this.registry = createDefaultRegistry();
    if (threads === 0) this.io = new TensorIO(createRemoteReader({ http: opts.http }));
  }

  /**
   * The thread pool, started by the first job: a run that fails before merging (a plan refused, a
   * Hub that answers 503) then exits without starting threads that load the whole engine for
   * nothing. Threads load through tensor-thread-entry.cjs: see there why not tensor-thread.js.
   */
  private threadPool(): Piscina {
    if (this.pool) return this.pool;
    const pool: Piscina = new Piscina({
      filename: new URL("./tensor-thread-entry.cjs", import.meta.url).href,
      minThreads: this.threads,
      maxThreads: this.threads,
      concurrentTasksPerWorker: JOBS_PER_THREAD,
      // Only a job that reads remote inputs waits in a busy thread: it has something to fetch
      // meanwhile. Not near the end of the queue, where it could wait while another thread idles.
      loadBalancer: (task, workers) => {
        const remote = (task[queueOptionsSymbol] as Queueing | null)?.remote === true;
        return pickThread(workers, remote && pool.queueSize >= this.threads ? JOBS_PER_THREAD : 1);
      },
      idleTimeout: 60_000,
      workerData: { http: this.http },
    });
    // An abort pops the task from piscina before its thread finishes; the thread's late reply then
    // has no task and piscina emits it as a pool 'error' (an uncaught exception without this
    // listener). That reply is stale by design: drop it; surface any other pool error.
    pool.on("error", (err: Error) => {
      if (!err.message.startsWith("Unexpected message from Worker")) process.emitWarning(err);
    });
    return (this.pool = pool);
  }

  /** Inline jobs run one at a time, so memory holds one tensor's buffers, as with one thread. */
  private inlineChain: Promise<unknown> = Promise.resolve();

  readonly threads: number;

  private closing = false;

  /**
   * A job on the pool. A thread holds two jobs (pickThread), and piscina aborts a running job by
   * terminating its thread, which also fails the other job there — possibly another task's, not
   * aborted at all. That job is sent again (it writes the same bytes to the same places).
   */
  private async runOnThread(job: TensorJob, signal?: AbortSignal): Promise<TensorJobResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        const queued: TensorJob & { [queueOptionsSymbol]: Queueing } = { ...job, [queueOptionsSymbol]: { remote: readsRemote(job) } };
        const r = (await this.threadPool().run(queued, signal ? { signal } : {})) as ThreadReply;
        if (!r.ok) throw fromWireError(r.error);
        return r.result;
      } catch (err) {
        const terminated = err instanceof Error && err.message === THREAD_TERMINATED;
        if (!terminated || signal?.aborted || this.closing || attempt >= MAX_RESUBMITS) throw err;
      }
    }
  }

  private runJob(job: TensorJob, signal?: AbortSignal): Promise<TensorJobResult> {
    if (this.threads > 0) return this.runOnThread(job, signal);
    const next = this.inlineChain.then(() => {
      signal?.throwIfAborted();
      return countedMergeTensor(() => mergeTensor(job, this.registry, this.io!)).finally(() => this.io!.endJob());
    });
    this.inlineChain = next.catch(() => {});
    return next;
  }

  async run(task: MergeTask, opts: RunOptions = {}): Promise<MergeTaskResult> {
    // One listener on the caller's signal per task, removed when the task settles, fans the abort
    // out to the task's own signal; each tensor job gets a signal of its own (one listener each).
    // Passing the caller's signal to every job put one listener per tensor on it at once: more
    // than ten per layer on Qwen2/Gemma2 shapes (MaxListenersExceededWarning).
    const jobAborts = new Set<AbortController>();
    const onAbort = () => {
      for (const c of jobAborts) c.abort(opts.signal?.reason);
    };
    opts.signal?.throwIfAborted();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await this.runTask(task, opts, jobAborts);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  private async runJobAbortable(job: TensorJob, aborts: Set<AbortController> | undefined): Promise<TensorJobResult> {
    if (!aborts) return this.runJob(job);
    const c = new AbortController();
    aborts.add(c);
    try {
      return await this.runJob(job, c.signal);
    } finally {
      aborts.delete(c);
    }
  }

  private async runTask(task: MergeTask, opts: RunOptions, aborts: Set<AbortController>): Promise<MergeTaskResult> {
    const start = performance.now();
    let bytesRead = 0;
    let bytesWritten = 0;
    const net = { networkBytes: 0, cacheBytes: 0, byHost: {} as Record<string, number> };
    const stages: StageTimes[] = [];
    const warnings: string[] = [];
    const results: TensorResult[] = await Promise.all(
      // Largest tensors first: the pool then ends on small jobs instead of one thread finishing a big one alone.
      [...task.tensors]
        .sort((a, b) => b.dest.byteLength - a.dest.byteLength)
        .map(async (tensor) => {
          const jobs = jobsFor(tensor, task.seed, this.registry);
          const parts = await Promise.all(jobs.map((j) => this.runJobAbortable(j, opts.signal ? aborts : undefined)));
          opts.signal?.throwIfAborted();
          let tRead = 0;
          let tWritten = 0;
          for (const p of parts) {
            tRead += p.bytesRead;
            tWritten += p.bytesWritten;
            if (p.stages) stages.push(p.stages);
            if (p.hub) {
              net.networkBytes += p.hub.networkBytes;
              net.cacheBytes += p.hub.cacheBytes;
              for (const [h, n] of Object.entries(p.hub.byHost)) net.byHost[h] = (net.byHost[h] ?? 0) + n;
            }
          }
          // Once per tensor, however many row chunks saw it.
          const w = parts.find((p) => p.warnings?.length)?.warnings;
          if (w) warnings.push(...w);
          bytesRead += tRead;
          bytesWritten += tWritten;
          const r: TensorResult = { name: tensor.name, byteLength: tensor.dest.byteLength };
          if (parts[0].sha256 !== undefined) {
            r.sha256 = parts.length === 1 ? parts[0].sha256 : combineDigests(parts.map((p) => p.sha256!));
          }
          opts.onTensor?.(tensor.name, tensor.dest.byteLength, tRead);
          return r;
        }),
    ).catch((err: unknown) => {
      if (opts.signal?.aborted) throw new MergeloomError("CANCELLED", `task ${task.taskId}: cancelled`, { cause: err });
      throw err;
    });
    recordStageSpans(task, stages, bytesRead, bytesWritten, net);
    const result: MergeTaskResult = { taskId: task.taskId, tensors: results, bytesRead, bytesWritten, durationMs: performance.now() - start };
    if (net.networkBytes || net.cacheBytes) Object.assign(result, { networkBytes: net.networkBytes, cacheBytes: net.cacheBytes, hosts: net.byHost });
    if (warnings.length) result.warnings = warnings;
    return result;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.pool?.destroy();
    this.io?.close();
  }
}

/**
 * The task's load, merge and write stages as spans under the caller's active span (the worker's
 * `process` span). Tensor jobs overlap across threads, so each span runs from the first job
 * entering the stage to the last leaving it, and `mergeloom.busy_ms` sums the jobs' own time.
 */
function recordStageSpans(
  task: MergeTask,
  stages: readonly StageTimes[],
  bytesRead: number,
  bytesWritten: number,
  net: { networkBytes: number; cacheBytes: number; byHost: Record<string, number> },
): void {
  if (!stages.length || !trace.getSpan(context.active())?.isRecording()) return;
  const tracer = mergeloomTracer();
  const span = (name: string, from: (s: StageTimes) => number, to: (s: StageTimes) => number, attrs: Attributes) => {
    let a = Infinity;
    let b = -Infinity;
    let busy = 0;
    for (const s of stages) {
      a = Math.min(a, from(s));
      b = Math.max(b, to(s));
      busy += to(s) - from(s);
    }
    tracer
      .startSpan(name, {
        startTime: a,
        attributes: { [ATTR_TASK_ID]: task.taskId, [ATTR_JOB_ID]: task.jobId, [ATTR_TENSOR_COUNT]: task.tensors.length, "mergeloom.busy_ms": busy, ...attrs },
      })
      .end(Math.max(a, b));
  };
  span(
    SPAN_NAMES.load,
    (s) => s.start,
    (s) => s.loaded,
    {
      [ATTR_BYTES_READ]: bytesRead,
      // Hub/HTTP inputs: how much came over the network (and from which hosts) vs a local cache.
      "mergeloom.bytes.network": net.networkBytes,
      "mergeloom.bytes.cache": net.cacheBytes,
      ...(Object.keys(net.byHost).length ? { "server.address": Object.keys(net.byHost).sort().join(",") } : {}),
    },
  );
  span(
    SPAN_NAMES.merge,
    (s) => s.loaded,
    (s) => s.merged,
    {},
  );
  span(
    SPAN_NAMES.write,
    (s) => s.merged,
    (s) => s.end,
    { [ATTR_BYTES_WRITTEN]: bytesWritten },
  );
}

function combineDigests(digests: string[]): string {
  const h = createHash("sha256");
  for (const d of digests) h.update(d);
  return h.digest("hex");
}
