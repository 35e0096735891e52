/**
 * Scores candidates on workers: one evaluation task per candidate on the work queue, outcomes
 * collected by watching the eval bucket (workers write them before they ack). The bucket is the
 * record: a killed worker's task is redelivered to another one, and a resumed search — same
 * search id, same candidate YAML, hence the same task ids — finds what already finished and
 * publishes only the rest.
 *
 * Workers run the same parse → plan → in-memory merge → ONNX numerics as LocalCandidateEvaluator,
 * so scores (and a seeded search's best.yml) are identical to an in-process search.
 */
import { createHash } from "node:crypto";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { EvalOutcome, EvalTask } from "@mergeloom/proto/records";
import { consumers, headers as H, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import type { KvBucket, Stoppable, Transport } from "@mergeloom/transport";
import { KvConflictError } from "@mergeloom/transport";
import { combineScores, type FitnessSpec } from "@mergeloom/engine/eval";
import { scorersUsed } from "@mergeloom/engine/eval";
import type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";

export interface NatsEvaluatorOptions {
  transport: Transport;
  fitness: FitnessSpec;
  /** Merge seed (DARE masks), as `mergeloom merge --random-seed`. */
  mergeSeed?: number;
  /** Identifies the search in task keys: stable across resumes of one search, different between searches. */
  searchId: string;
  /** Forget outcomes recorded under this search id by an earlier run (a new search, not a resume). */
  fresh?: boolean;
  /** Close the transport on close(). */
  ownsTransport?: boolean;
  /** Warn when no worker is registered for this long, and every such interval after (default 10 s). */
  noWorkerWarnMs?: number;
  onWarning?: (message: string) => void;
}

const TOKEN_UNSAFE = /[^A-Za-z0-9_-]/g;

/** A search id from what determines a search (hashed, token-safe). */
export function deriveSearchId(...parts: string[]): string {
  return `evolve-${createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 16)}`;
}

/** A task id per candidate: its id (made token-safe) plus a hash of its id and YAML. */
export function evalTaskId(c: Pick<Candidate, "id" | "mergeYaml">): string {
  const h = createHash("sha256").update(c.id).update("\u0000").update(c.mergeYaml).digest("hex").slice(0, 12);
  return `${c.id.replace(TOKEN_UNSAFE, "_").slice(0, 48)}-${h}`;
}

export class NatsCandidateEvaluator implements CandidateEvaluator {
  private constructor(
    private readonly opts: NatsEvaluatorOptions,
    private readonly outcomes: KvBucket<EvalOutcome>,
    /** The worker-side scorer the fitness needs: its tasks go to that scorer's queue. */
    private readonly scorer?: string,
  ) {}

  private get subject(): string {
    return this.scorer ? subjects.taskScore(this.scorer) : subjects.taskEvaluate;
  }

  private get durable(): string {
    return this.scorer ? consumers.scorerWorkers(this.scorer) : consumers.evalWorkers;
  }

  static async create(opts: NatsEvaluatorOptions): Promise<NatsCandidateEvaluator> {
    const command = opts.fitness.tasks.find((t) => t.kind === "command");
    if (command) {
      throw new MergeloomError(
        "USAGE",
        `--nats: fitness task '${command.name}' is a command task; command tasks run only in-process (workers do not run shell commands from the queue); run the search without --nats`,
      );
    }
    const used = scorersUsed(opts.fitness.tasks);
    if (used.length > 1) {
      throw new MergeloomError(
        "USAGE",
        `--nats: the fitness uses scorers ${used.join(", ")}; a distributed search can use one worker-side scorer per fitness (each scorer has its own queue, and a candidate is one task); combine them in one scorer command`,
      );
    }
    if (opts.searchId.replace(TOKEN_UNSAFE, "") !== opts.searchId) {
      throw new MergeloomError("USAGE", `evaluate on nats: search id '${opts.searchId}' may only use letters, digits, '_' and '-'`);
    }
    const outcomes = await openKv(opts.transport, buckets.evals);
    if (opts.fresh) {
      for (const k of await outcomes.keys()) if (k.startsWith(`${opts.searchId}.`)) await outcomes.delete(k);
    }
    return new NatsCandidateEvaluator(opts, outcomes, used[0]);
  }

  async evaluate(candidates: readonly Candidate[], signal?: AbortSignal): Promise<CandidateResult[]> {
    signal?.throwIfAborted();
    const { searchId } = this.opts;
    const fitness = toWireSpec(this.opts.fitness);
    const tasks = candidates.map<EvalTask>((c) => ({
      jobId: searchId,
      taskId: evalTaskId(c),
      candidateId: c.id,
      mergeYaml: c.mergeYaml,
      fitness,
      seed: this.opts.mergeSeed ?? 0,
    }));
    const index = new Map(tasks.map((t, i) => [buckets.evals.key(t.jobId, t.taskId), i]));
    if (index.size !== tasks.length) throw new MergeloomError("EVAL_FAILED", `evaluate generation: two candidates share an id; candidate ids must be unique`);
    const results = new Array<CandidateResult | undefined>(tasks.length);
    let left = tasks.length;
    let watcher: Stoppable | undefined;
    let abandonWatcher: Stoppable | undefined;
    let warnTimer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const onOutcome = (key: string, o: EvalOutcome | null) => {
          const i = index.get(key);
          if (!o || i === undefined || results[i]) return;
          const id = candidates[i].id;
          results[i] = o.ok
            ? { id, scores: o.scores, fitness: combineScores(o.scores, this.opts.fitness.tasks) }
            : { id, scores: {}, fitness: NaN, error: o.error?.message ?? `candidate ${id} failed on worker ${o.worker}` };
          if (--left === 0) resolve();
        };
        onAbort = () => reject(signal!.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        void (async () => {
          // Outcomes first (a resumed search), then publish only what has not finished.
          watcher = await this.outcomes.watch((c) => onOutcome(c.key, c.value), { key: `${searchId}.*` });
          // A candidate every worker dropped (crashed on it each time) gets no outcome from a
          // worker: record it as failed here, so the generation completes instead of waiting.
          abandonWatcher = await this.opts.transport.watchAbandoned(
            this.subject,
            (a) => {
              if (a.headers[H.jobId] !== searchId) return;
              void a.discard();
              const taskId = a.headers[H.taskId] ?? "?";
              const i = index.get(buckets.evals.key(searchId, taskId));
              if (i === undefined || results[i]) return;
              const message = `candidate ${candidates[i].id} was given up after ${a.deliveries} deliveries: every worker that took it stopped or lost its lease before finishing (killed, out of memory, or stalled); check the workers' logs`;
              const o: EvalOutcome = {
                jobId: searchId,
                taskId,
                candidateId: candidates[i].id,
                ok: false,
                scores: {},
                error: { code: "EVAL_FAILED", message, retryable: true },
                worker: "coordinator",
                attempt: a.deliveries,
                durationMs: 0,
                finishedAt: Date.now(),
              };
              this.outcomes.create(buckets.evals.key(searchId, taskId), o).catch((e: unknown) => (e instanceof KvConflictError ? undefined : reject(e)));
            },
            { durable: this.durable },
          );
          for (const t of tasks) {
            if (results[index.get(buckets.evals.key(t.jobId, t.taskId))!]) continue;
            signal?.throwIfAborted();
            await this.opts.transport.publishTask(this.subject, "eval-task", t, { [H.jobId]: t.jobId, [H.taskId]: t.taskId });
          }
          if (left > 0) warnTimer = this.watchWorkers((t) => (warnTimer = t));
        })().catch(reject);
      });
    } finally {
      clearTimeout(warnTimer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      await watcher?.stop().catch(() => {});
      await abandonWatcher?.stop().catch(() => {});
    }
    return results as CandidateResult[];
  }

  /** Says so when no worker is connected, instead of waiting silently. */
  private watchWorkers(setTimer: (t: NodeJS.Timeout) => void): NodeJS.Timeout {
    const every = this.opts.noWorkerWarnMs ?? 10_000;
    const since = Date.now();
    const check = async () => {
      const workers = await (await openKv(this.opts.transport, buckets.workers)).keys();
      if (!workers.length) {
        this.opts.onWarning?.(
          `no mergeloom worker is connected (waited ${Math.round((Date.now() - since) / 1000)} s); start one with: mergeloom worker --nats URL`,
        );
      }
      const t = setTimeout(() => void check().catch(() => {}), every);
      t.unref();
      setTimer(t);
    };
    const t = setTimeout(() => void check().catch(() => {}), every);
    t.unref();
    return t;
  }

  async close(): Promise<void> {
    if (this.opts.ownsTransport) await this.opts.transport.close();
  }
}

/** The spec as plain data (drops undefined fields, which the codec would otherwise carry as null). */
function toWireSpec(spec: FitnessSpec): FitnessSpec {
  return JSON.parse(JSON.stringify(spec)) as FitnessSpec;
}
