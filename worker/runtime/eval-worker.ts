/**
 * An evaluation worker: competes for candidate evaluations of an evolutionary search on the work
 * queue (through the shared TaskRuntime: lease, heartbeat, outcome in the eval bucket before the
 * ack so a resumed search finds it, retry or fail, drain) and scores each candidate with the
 * engine's candidate pipeline (scoreCandidate), as the in-process evaluators do, so a candidate
 * scores the same on any worker as in-process.
 *
 * What is its own: the trust boundary (no command tasks from the queue, paths confined to the
 * storage roots), one queue per named scorer it has, and ONNX sessions kept per fitness spec, one
 * per concurrent slot. Decoded inputs are cached across candidates (a search merges the same few
 * models hundreds of times).
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { FitnessSpec, EvalOutcome, EvalTask } from "@mergeloom/proto/records";
import { buckets } from "@mergeloom/proto/buckets";
import { consumers, subjects } from "@mergeloom/proto/subjects";
import { ATTR_JOB_ID, ATTR_TASK_ID, ATTR_WORKER_NAME, inSpan, SPAN_NAMES } from "@mergeloom/proto/tracing";
import type { Transport } from "@mergeloom/transport";
import { CandidateMerger, OnnxFitness, scoreCandidate, scorersUsed, type EvalDevice, type Scorers } from "@mergeloom/engine/eval";
import type { WorkerMetrics } from "../ops/worker-metrics.js";
import { checkPathsInsideRoots, inputUris } from "./check-task-paths.js";
import type { ScratchDir } from "./scratch-dir.js";
import { TaskRuntime, type TaskHandler } from "./task-runtime.js";

export interface EvalWorkerOptions {
  transport: Transport;
  name?: string;
  /** Candidates evaluated at once, each with its own ONNX session (default 1). */
  concurrency?: number;
  /** ONNX execution provider: "auto" (default) uses CUDA when it loads, else the CPU. */
  device?: EvalDevice;
  /** When set, candidates may only read models and eval files under these directories. */
  storageRoots?: readonly string[];
  ackWaitMs?: number;
  maxDeliver?: number;
  backoffMs?: number[];
  /** Clear the decoded-input cache before a merge when it holds more than this (default 8 GiB). */
  maxCacheBytes?: number;
  metrics?: WorkerMetrics;
  log?: (line: string) => void;
  /** Fault injection (tests): sleep this long, heart-beating, before each evaluation. */
  taskDelayMs?: number;
  /**
   * Named scorers (`--scorer NAME=COMMAND`): for each, this worker also consumes that scorer's
   * queue (subjects.taskScore), writes the candidate to `scratch` and runs the command on it.
   */
  scorers?: Scorers;
  /** Where candidate checkpoints for scorers go (required with scorers). */
  scratch?: ScratchDir;
  /** The GPU this worker owns, given to scorers as CUDA_VISIBLE_DEVICES. */
  gpu?: string;
}

export class EvalWorker {
  readonly name: string;
  private readonly merger: CandidateMerger;
  private readonly runtime: TaskRuntime;
  /** Idle ONNX sessions per fitness spec (most recent spec last). */
  private readonly sessions = new Map<string, OnnxFitness[]>();

  constructor(private readonly opts: EvalWorkerOptions) {
    this.name = opts.name ?? `${hostname()}-${process.pid}`;
    this.merger = new CandidateMerger({ storageRoots: opts.storageRoots, maxCacheBytes: opts.maxCacheBytes ?? 8 * 2 ** 30 });
    this.runtime = new TaskRuntime({ ...opts, name: this.name });
  }

  get ready(): boolean {
    return this.runtime.ready;
  }

  get activeTasks(): number {
    return this.runtime.activeTasks;
  }

  async start(): Promise<void> {
    const scorers = [...(this.opts.scorers?.keys() ?? [])];
    if (scorers.length && !this.opts.scratch) throw new MergeloomError("USAGE", "eval worker: scorers need a scratch directory for candidate checkpoints");
    const handler = this.handler();
    const queue = { kind: "eval-task", outcomes: buckets.evals, concurrency: this.concurrency, handler } as const;
    await this.runtime.consume({ ...queue, subject: subjects.taskEvaluate, durable: consumers.evalWorkers });
    await this.opts.scratch?.init();
    // One durable consumer per scorer: only workers that have the scorer ever see its tasks.
    for (const name of scorers) await this.runtime.consume({ ...queue, subject: subjects.taskScore(name), durable: consumers.scorerWorkers(name) });
    this.log(
      `eval worker ${this.name} ready: concurrency ${this.concurrency}, device ${this.opts.device ?? "auto"}, scorers: ${scorers.length ? scorers.join(", ") : "none"}`,
    );
  }

  private get concurrency(): number {
    return Math.max(1, this.opts.concurrency ?? 1);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** What the task runtime needs to know about an evaluation. */
  private handler(): TaskHandler<EvalTask, EvalOutcome> {
    return {
      describe: (task) => `task ${task.taskId} of search ${task.jobId}`,
      detail: (task) => `candidate ${task.candidateId}`,
      label: (task) => `evaluate candidate ${task.candidateId}`,
      rerun: "the search",
      run: async (task, ctx) => {
        const { scores, device } = await this.evaluate(task, ctx.signal);
        const durationMs = performance.now() - ctx.startedAt;
        return { outcome: { candidateId: task.candidateId, scores, durationMs, device }, durationMs, note: device };
      },
      // Recorded so the search ranks the candidate last instead of waiting for it; not when the worker was stopped.
      failed: (task, ctx) => (ctx.signal.aborted ? undefined : { candidateId: task.candidateId, scores: {}, durationMs: performance.now() - ctx.startedAt }),
    };
  }

  /** Merges the candidate in memory and scores it; throws on any failure. */
  async evaluate(task: EvalTask, signal?: AbortSignal): Promise<{ scores: Record<string, number>; device: "cpu" | "cuda" }> {
    return inSpan(
      SPAN_NAMES.evaluate,
      { [ATTR_JOB_ID]: task.jobId, [ATTR_TASK_ID]: task.taskId, "mergeloom.candidate.id": task.candidateId, [ATTR_WORKER_NAME]: this.name },
      () => this.evaluateUntraced(task, signal),
    );
  }

  private async evaluateUntraced(task: EvalTask, signal?: AbortSignal): Promise<{ scores: Record<string, number>; device: "cpu" | "cuda" }> {
    const command = task.fitness.tasks.find((t) => t.kind === "command");
    if (command) {
      // A named scorer (kind: scorer) is the way to run a command here: the worker's own.
      // Running shell commands named by queue messages would let anyone who can publish run code here.
      throw new MergeloomError(
        "EVAL_FAILED",
        `evaluate candidate ${task.candidateId}: fitness task '${command.name}' is a command task, which runs only in-process; run the search without --nats`,
      );
    }
    const roots = this.opts.storageRoots;
    if (roots) await checkFitnessPaths(task.fitness, roots);
    const missing = scorersUsed(task.fitness.tasks).filter((n) => !this.opts.scorers?.has(n));
    // Cannot happen through the per-scorer queues; a permanent error if a task was misrouted.
    if (missing.length)
      throw new MergeloomError("EVAL_FAILED", `evaluate candidate ${task.candidateId}: worker ${this.name} has no scorer ${missing.join(", ")}`);
    let device: "cpu" | "cuda" = "cpu";
    const scores = await scoreCandidate(
      this.merger,
      { id: task.candidateId, mergeYaml: task.mergeYaml, seed: task.seed },
      {
        tasks: task.fitness.tasks,
        // Every local input the plan reads, as for merge tasks.
        checkPlan: roots ? (plan) => checkPathsInsideRoots(inputUris(plan.tensors), roots) : undefined,
        scoreWeights: async (weights) => {
          const fitness = await this.acquire(task.fitness);
          try {
            const s = await fitness.score(weights);
            device = fitness.device;
            return s;
          } finally {
            this.releaseSession(task.fitness, fitness);
          }
        },
        scratch: this.opts.scratch,
        scorers: this.opts.scorers,
        gpu: this.opts.gpu,
        signal,
      },
    );
    return { scores, device };
  }

  private async acquire(spec: FitnessSpec): Promise<OnnxFitness> {
    const idle = this.sessions.get(specKey(spec))?.pop();
    // The cores are split between the concurrent slots unless the spec pins the thread count.
    return idle ?? OnnxFitness.create(spec, { device: this.opts.device ?? "auto", slots: this.concurrency });
  }

  private releaseSession(spec: FitnessSpec, f: OnnxFitness): void {
    const k = specKey(spec);
    const list = this.sessions.get(k) ?? [];
    this.sessions.delete(k);
    list.push(f);
    this.sessions.set(k, list);
    // Keep the sessions of the two most recent specs (a search, and perhaps the previous one).
    while (this.sessions.size > 2) {
      const [oldest, stale] = this.sessions.entries().next().value!;
      this.sessions.delete(oldest);
      for (const s of stale) void s.release().catch(() => {});
    }
  }

  /** Stops taking tasks; graceful lets in-flight evaluations finish (until `timeoutMs`). */
  async stop(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    await this.runtime.stop(opts);
    for (const list of this.sessions.values()) for (const s of list) await s.release().catch(() => {});
    this.sessions.clear();
    this.merger.close();
  }
}

function specKey(spec: FitnessSpec): string {
  return createHash("sha256").update(JSON.stringify(spec)).digest("hex");
}

/** The graph, vocabulary and data files must lie under the storage roots. */
async function checkFitnessPaths(spec: FitnessSpec, roots: readonly string[]): Promise<void> {
  await checkPathsInsideRoots(
    [spec.graph, spec.vocab, ...spec.tasks.map((t) => t.data)].filter((f): f is string => f !== undefined),
    roots,
  );
}
