/**
 * Runs a job's tasks through a Transport: NATS JetStream for a cluster, the in-memory transport
 * for the embedded default. Finished tasks are read from the tasks bucket, which workers write
 * before they ack — so a restarted coordinator sees everything that finished while it was away
 * and republishes only the rest. Job state lives in the jobs bucket.
 */
import { MAX_MESSAGE_BYTES } from "@mergeloom/proto/codec";
import { errorMessage, MergeloomError, ProtocolError } from "@mergeloom/proto/errors";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import type { JobRecord, TaskOutcome } from "@mergeloom/proto/records";
import { headers as H, PROTOCOL_VERSION, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import type { KvBucket, Stoppable, Transport } from "@mergeloom/transport";
import { KvConflictError } from "@mergeloom/transport";
import { fromWireError } from "@mergeloom/proto/wire-error";
import { open, type FileHandle } from "node:fs/promises";
import type { MergeEventSink } from "@mergeloom/engine/job";
import type { TaskDispatcher } from "@mergeloom/engine/job";

/** Task publishes awaiting their JetStream ack at once. */
const PUBLISH_WINDOW = 256;

export interface TransportDispatcherOptions {
  /** Threads per worker, for the memory estimate. */
  threads: number;
  /** Warn when no worker is registered for this long (and every such interval after). */
  noWorkerWarnMs?: number;
  /** Where users connect workers (for the warning text). */
  natsUrl?: string;
  onEvent?: MergeEventSink;
  /** Fail instead of waiting when no worker shows up within this time (0 = wait forever). */
  noWorkerTimeoutMs?: number;
}

export class TransportDispatcher implements TaskDispatcher {
  readonly threads: number;
  /** Task messages travel through the transport's codec: NATS's default max_payload. */
  readonly maxMessageBytes: number = MAX_MESSAGE_BYTES;
  private jobs?: KvBucket<JobRecord>;
  private tasks?: KvBucket<TaskOutcome>;
  constructor(
    readonly transport: Transport,
    private readonly opts: TransportDispatcherOptions,
  ) {
    this.threads = opts.threads;
  }

  private async buckets(): Promise<{ jobs: KvBucket<JobRecord>; tasks: KvBucket<TaskOutcome> }> {
    this.jobs ??= await openKv(this.transport, buckets.jobs);
    this.tasks ??= await openKv(this.transport, buckets.tasks);
    return { jobs: this.jobs, tasks: this.tasks };
  }

  /**
   * The job's record, or null. A record that does not decode (not written by mergeloom) is not
   * resumable: it is reported, the job's old task outcomes are forgotten, and the job starts over.
   */
  async loadJob(jobId: string): Promise<JobRecord | null> {
    try {
      return (await (await this.buckets()).jobs.get(jobId))?.value ?? null;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.opts.onEvent?.({
        type: "warning",
        message: `job ${jobId}: its record in ${buckets.jobs.name} is unreadable (${errorMessage(err)}); starting the job over`,
      });
      await this.resetJob(jobId);
      return null;
    }
  }

  async saveJob(rec: JobRecord): Promise<void> {
    await (await this.buckets()).jobs.put(rec.jobId, { ...rec, updatedAt: Date.now() });
  }

  /** Every job record that decodes (an undecodable entry is no job this coordinator can conflict with). */
  async listJobs(): Promise<JobRecord[]> {
    const { jobs } = await this.buckets();
    const out: JobRecord[] = [];
    for (const k of await jobs.keys()) {
      const e = await jobs.get(k).catch(() => null);
      if (e) out.push(e.value);
    }
    return out;
  }

  /** Forgets the outcomes of an earlier, abandoned run of the same job id. */
  async resetJob(jobId: string): Promise<void> {
    const { tasks } = await this.buckets();
    for (const k of await tasks.keys()) if (k.startsWith(`${jobId}.`)) await tasks.delete(k);
  }

  async runTasks(list: readonly MergeTask[], onResult: (r: MergeTaskResult) => void, signal?: AbortSignal): Promise<void> {
    if (!list.length) return;
    const { jobs, tasks } = await this.buckets();
    const jobId = list[0].jobId;
    const pending = new Map(list.map((t) => [buckets.tasks.key(t.jobId, t.taskId), t]));
    const reported = new Set<string>();
    let watcher: Stoppable | undefined;
    let jobWatcher: Stoppable | undefined;
    let abandonWatcher: Stoppable | undefined;
    // Stops the no-worker watch once the job settles (it may be scheduled after that).
    const settled = new AbortController();
    let onCancel: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const fail = (err: unknown) => reject(err);
        // Object-mode outputs are copied into place one task at a time, in arrival order.
        let copying: Promise<void> = Promise.resolve();
        const onOutcome = (key: string, o: TaskOutcome | null) => {
          if (!o || !pending.has(key) || reported.has(key)) return;
          if (o.ok && o.result) {
            reported.add(key);
            const task = pending.get(key)!;
            const result = o.result;
            copying = copying
              .then(() => (task.output === "object" ? this.fetchOutputs(task) : undefined))
              .then(() => {
                pending.delete(key);
                onResult(result);
                if (pending.size === 0) resolve();
              })
              .catch(fail);
          } else if (!o.ok) {
            const e = fromWireError(o.error ?? { code: "JOB_FAILED", message: `task ${o.taskId} failed`, retryable: false });
            fail(new MergeloomError("JOB_FAILED", `job ${jobId} failed: ${e.message}`, { cause: e }));
          }
        };
        // Removed when the job settles: a long-lived signal (evolve runs many jobs) must not collect one per job.
        onCancel = () => fail(new MergeloomError("CANCELLED", `job ${jobId}: cancelled`));
        signal?.addEventListener("abort", onCancel, { once: true });
        void (async () => {
          // Outcomes first (resume), then publish only what has not finished.
          watcher = await tasks.watch((c) => onOutcome(c.key, c.value), {
            key: `${jobId}.*`,
            // A task record this job cannot read fails this job (only), saying which record.
            onError: (err, key) => {
              if (!pending.has(key) || reported.has(key)) return;
              fail(
                new MergeloomError(
                  "JOB_FAILED",
                  `job ${jobId} failed: the outcome of task ${key.slice(jobId.length + 1)} in ${buckets.tasks.name} is unreadable (${errorMessage(err)}); run the merge again`,
                ),
              );
            },
          });
          // A task every worker dropped (killed or stalled on each of its deliveries) gets no
          // outcome from any worker: record its failure here, so the job fails instead of waiting.
          abandonWatcher = await this.transport.watchAbandoned(subjects.taskMerge, (a) => {
            if (a.headers[H.jobId] !== jobId) return;
            void a.discard();
            const taskId = a.headers[H.taskId] ?? "?";
            const key = buckets.tasks.key(jobId, taskId);
            if (!pending.has(key) || reported.has(key)) return;
            const message =
              `task ${taskId} was given up after ${a.deliveries} deliveries: every worker that took it stopped or lost its lease before finishing ` +
              `(killed, out of memory, or stalled without heartbeats); check the workers' logs and run the merge again`;
            const outcome: TaskOutcome = {
              jobId,
              taskId,
              ok: false,
              error: { code: "JOB_FAILED", message, retryable: true },
              worker: "coordinator",
              attempt: a.deliveries,
              finishedAt: Date.now(),
            };
            // create: a worker's own late outcome, if any, wins
            tasks.create(key, outcome).catch((e: unknown) => (e instanceof KvConflictError ? undefined : fail(e)));
          });
          jobWatcher = await jobs.watch(
            (c) => {
              if (c.value?.state === "cancelled") fail(new MergeloomError("CANCELLED", `job ${jobId}: cancelled (mergeloom cancel)`));
            },
            { key: jobId, updatesOnly: true },
          );
          // Publish with a bounded window of unacknowledged publishes: one awaited at a time caps
          // dispatch at ~1/RTT (bench/dispatch-overhead.ts).
          // Largest tasks first (longest-processing-time order): a one-tensor embedding or lm_head
          // task published last would run alone on one thread while the others idle.
          const inFlight = new Set<Promise<void>>();
          for (const [key, t] of [...pending].sort((a, b) => taskBytes(b[1]) - taskBytes(a[1]))) {
            if (reported.has(key)) continue;
            signal?.throwIfAborted();
            const p: Promise<void> = this.transport
              .publishTask(subjects.taskMerge, "merge-task", t, { [H.jobId]: t.jobId, [H.taskId]: t.taskId })
              .finally(() => inFlight.delete(p));
            inFlight.add(p);
            if (inFlight.size >= PUBLISH_WINDOW) await Promise.race(inFlight);
          }
          await Promise.all(inFlight);
          this.watchWorkers(jobId, settled.signal, fail);
        })().catch(fail);
      });
    } finally {
      if (onCancel) signal?.removeEventListener("abort", onCancel);
      settled.abort();
      await watcher?.stop().catch(() => {});
      await jobWatcher?.stop().catch(() => {});
      await abandonWatcher?.stop().catch(() => {});
    }
  }

  /** Writes an object-mode task's uploaded bytes to the tensors' offsets in the local output, then drops the object. */
  private async fetchOutputs(task: MergeTask): Promise<void> {
    const outputs = await this.transport.objects(buckets.outputs.name);
    const name = buckets.outputs.key(task.jobId, task.taskId);
    const stream = await outputs.get(name);
    if (!stream)
      throw new MergeloomError("JOB_FAILED", `job ${task.jobId}: outputs of task ${task.taskId} are missing from the object store (${name})`, {
        retryable: true,
      });
    const fds = new Map<string, FileHandle>();
    try {
      let i = 0;
      let pos = 0; // bytes of tensor i written so far
      for await (const chunk of stream) {
        let off = 0;
        while (off < chunk.byteLength) {
          const t = task.tensors[i];
          if (!t) throw new MergeloomError("JOB_FAILED", `job ${task.jobId}: task ${task.taskId} uploaded more bytes than its tensors hold`);
          let fh = fds.get(t.dest.uri);
          if (!fh) fds.set(t.dest.uri, (fh = await open(t.dest.uri, "r+")));
          const n = Math.min(chunk.byteLength - off, t.dest.byteLength - pos);
          await fh.write(chunk, off, n, t.dest.offset + pos);
          off += n;
          pos += n;
          if (pos === t.dest.byteLength) {
            i++;
            pos = 0;
          }
        }
      }
      while (i < task.tensors.length && task.tensors[i].dest.byteLength === 0) i++;
      if (i !== task.tensors.length)
        throw new MergeloomError("JOB_FAILED", `job ${task.jobId}: task ${task.taskId} uploaded fewer bytes than its tensors need`);
    } finally {
      for (const fh of fds.values()) await fh.close();
    }
    await outputs.delete(name).catch(() => {});
  }

  /** Says so when no worker is connected, instead of waiting silently. */
  private watchWorkers(jobId: string, settled: AbortSignal, fail: (e: unknown) => void): void {
    let timer: NodeJS.Timeout | undefined;
    // Not unref'd: while a job waits for workers, this is what the process is doing.
    const setTimer = (t: NodeJS.Timeout) => (timer = t);
    settled.addEventListener("abort", () => clearTimeout(timer), { once: true });
    const every = this.opts.noWorkerWarnMs ?? 5000;
    // Counts from the last check that saw a worker: a job whose workers all died mid-run waits, warns
    // and (with a timeout) fails like one that never had any.
    let since = Date.now();
    const check = async () => {
      const registry = await openKv(this.transport, buckets.workers);
      const workers = await registry.keys();
      // An unreadable registry entry is no worker of ours: skip it instead of ending the watch.
      const records = (await Promise.all(workers.map((k) => registry.get(k).catch(() => null)))).flatMap((e) => (e ? [e.value] : []));
      if (records.length && !records.some((r) => r.protocol === PROTOCOL_VERSION)) {
        // Workers of another version consume other subjects: they would never take these tasks.
        const seen = records.map((r) => `${r.name} v${r.protocol} (mergeloom ${r.version})`).join(", ");
        fail(
          new ProtocolError(
            `job ${jobId}: this coordinator speaks protocol v${PROTOCOL_VERSION} but every connected worker speaks another (${seen}); run the same mergeloom version on both`,
          ),
        );
        return;
      }
      if (workers.length) since = Date.now();
      else {
        const url = this.opts.natsUrl ?? "the NATS server";
        const waited = Math.round((Date.now() - since) / 1000);
        this.opts.onEvent?.({
          type: "warning",
          message: `no mergeloom worker is connected (waited ${waited} s); start one with: mergeloom worker --nats ${url}`,
        });
        if (this.opts.noWorkerTimeoutMs && Date.now() - since >= this.opts.noWorkerTimeoutMs) {
          fail(
            new MergeloomError(
              "NO_WORKERS",
              `job ${jobId}: no worker connected for ${Math.round(this.opts.noWorkerTimeoutMs / 1000)} s; start one with: mergeloom worker --nats ${url}`,
            ),
          );
          return;
        }
      }
      rearm(every);
    };
    // A failed registry read (a NATS reconnect) skips one check; it must not end the watch, or a job
    // whose workers all died would wait silently after all.
    const rearm = (ms: number) => {
      if (!settled.aborted) setTimer(setTimeout(() => void check().catch(() => rearm(every)), ms));
    };
    rearm(Math.min(every, 1000));
  }
}

/** Output bytes of a task: its merge cost, for the dispatch order. */
function taskBytes(t: MergeTask): number {
  let n = 0;
  for (const x of t.tensors) n += x.dest.byteLength;
  return n;
}
