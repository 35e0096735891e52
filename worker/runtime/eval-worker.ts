/**
 * An evaluation worker: competes for candidate evaluations of an evolutionary search on the work
 * queue, merges each candidate in memory and scores it with the ONNX fitness, records the outcome
 * in the eval bucket (before the ack, so a resumed search finds it) and acks.
 *
 * The numerics are LocalCandidateEvaluator's — parse → plan → in-memory merge rounded to the output
 * dtype → ONNX graph — so a candidate scores the same on any worker as in-process. Decoded inputs
 * are cached across candidates (a search merges the same few models hundreds of times), and one
 * ONNX session per concurrent slot is kept per fitness spec.
 *
 * Planning imports coordinator code (parseMergeConfig, buildPlan): a worker planning a whole merge
 * from its YAML is what makes a candidate one small message instead of hundreds of tensor tasks.
 */
import { createHash } from "node:crypto";
import { availableParallelism, hostname } from "node:os";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { buildPlan, type PlannedTensor } from "@mergeloom/engine/plan";
import { errorMessage, isPermanent, MergeloomError } from "@mergeloom/proto";
import type { FitnessSpec, EvalOutcome, EvalTask } from "@mergeloom/proto";
import { consumers, subjects } from "@mergeloom/proto";
import { buckets } from "@mergeloom/proto";
import { openKv } from "@mergeloom/transport";
import type { Delivery, KvBucket, Stoppable, Transport } from "@mergeloom/transport";
import { toWireError } from "@mergeloom/proto";
import { CharTokenizer, loadEvalSet, type EvalSet } from "@mergeloom/engine/eval";
import { loadPrompts } from "@mergeloom/engine/eval";
import { OnnxEvaluator, type EvalDevice, type WeightMap } from "@mergeloom/engine/eval";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { InMemoryMerger } from "@mergeloom/engine/driver";
import type { MergeMethodRegistry } from "@mergeloom/engine/methods";
import { createRemoteReader } from "@mergeloom/engine/driver";
import { TensorIO } from "@mergeloom/engine/driver";
import type { WorkerMetrics } from "../ops/worker-metrics.js";
import { checkPathsInsideRoots, inputUris } from "./check-task-paths.js";
import { ATTR_JOB_ID, ATTR_TASK_ID, ATTR_WORKER_NAME, inSpan, SPAN_NAMES } from "@mergeloom/proto";
import { CheckpointCache } from "@mergeloom/engine/storage";
import { join } from "node:path";
import { runScorerTask, scorersUsed, type Scorers } from "@mergeloom/engine/eval";
import type { ScratchDir } from "./scratch-dir.js";
import { writeCandidateCheckpoint } from "./write-candidate.js";

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

interface Fitness {
  device: "cpu" | "cuda";
  score(weights: WeightMap): Promise<Record<string, number>>;
  release(): Promise<void>;
}

interface Prepared {
  name: string;
  set?: EvalSet;
  prompts?: string[];
}

/**
 * OnnxFitness's scoring with a choice of execution provider (OnnxFitness pins the CPU); same data
 * loading, limits and per-task scores.
 */
async function createFitness(spec: FitnessSpec, device: EvalDevice, threads: number | undefined): Promise<Fitness> {
  if (!spec.graph || !spec.vocab) throw new MergeloomError("EVAL_FAILED", "create fitness: accuracy and entropy tasks need fitness.graph and fitness.vocab");
  const tok = await CharTokenizer.fromVocabFile(spec.vocab);
  const prepared: Prepared[] = [];
  for (const t of spec.tasks) {
    if (t.kind === "accuracy") {
      const set = await loadEvalSet(t.data!, tok);
      if (t.limit !== undefined) set.examples = set.examples.slice(0, t.limit);
      prepared.push({ name: t.name, set });
    } else if (t.kind === "entropy") {
      prepared.push({ name: t.name, prompts: await loadPrompts(t.data!, t.limit) });
    }
  }
  const ev = await OnnxEvaluator.create(spec.graph, { device, batchSize: spec.batchSize, threads, tokenizer: tok });
  return {
    device: ev.device,
    async score(weights) {
      const out: Record<string, number> = {};
      for (const p of prepared) out[p.name] = p.set ? (await ev.accuracy(weights, p.set)).accuracy : -(await ev.meanEntropy(weights, p.prompts!));
      return out;
    },
    release: () => ev.release(),
  };
}

export class EvalWorker {
  readonly name: string;
  private readonly checkpoints: CheckpointCache;
  private readonly registry: MergeMethodRegistry = createDefaultRegistry();
  private readonly io = new TensorIO(createRemoteReader());
  private readonly merger = new InMemoryMerger(this.registry, this.io);
  /** Idle ONNX sessions per fitness spec (most recent spec last). */
  private readonly sessions = new Map<string, Fitness[]>();
  private consumer?: Stoppable;
  private scorerConsumers: Stoppable[] = [];
  private outcomes?: KvBucket<EvalOutcome>;
  private active = 0;
  private draining = false;

  constructor(private readonly opts: EvalWorkerOptions) {
    this.name = opts.name ?? `${hostname()}-${process.pid}`;
    this.checkpoints = new CheckpointCache(opts.storageRoots ? { storageRoots: opts.storageRoots } : {});
  }

  get ready(): boolean {
    return !!this.consumer && !this.draining;
  }

  get activeTasks(): number {
    return this.active;
  }

  async start(): Promise<void> {
    const t = this.opts.transport;
    this.outcomes = await openKv(t, buckets.evals);
    this.consumer = await t.consume(subjects.taskEvaluate, "eval-task", (d) => this.handle(d), {
      concurrency: this.concurrency,
      ackWaitMs: this.opts.ackWaitMs ?? 30_000,
      maxDeliver: this.opts.maxDeliver ?? 5,
      backoffMs: this.opts.backoffMs ?? [1000, 5000, 15000],
      durable: consumers.evalWorkers,
    });
    const scorers = [...(this.opts.scorers?.keys() ?? [])];
    if (scorers.length && !this.opts.scratch) throw new MergeloomError("USAGE", "eval worker: scorers need a scratch directory for candidate checkpoints");
    await this.opts.scratch?.init();
    // One durable consumer per scorer: only workers that have the scorer ever see its tasks.
    for (const name of scorers) {
      this.scorerConsumers.push(
        await t.consume(subjects.taskScore(name), "eval-task", (d) => this.handle(d), {
          concurrency: this.concurrency,
          ackWaitMs: this.opts.ackWaitMs ?? 30_000,
          maxDeliver: this.opts.maxDeliver ?? 5,
          backoffMs: this.opts.backoffMs ?? [1000, 5000, 15000],
          durable: consumers.scorerWorkers(name),
        }),
      );
    }
    this.log(`eval worker ${this.name} ready: concurrency ${this.concurrency}, device ${this.opts.device ?? "auto"}, scorers: ${scorers.length ? scorers.join(", ") : "none"}`);
  }

  private get concurrency(): number {
    return Math.max(1, this.opts.concurrency ?? 1);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private async handle(d: Delivery<EvalTask>): Promise<void> {
    const task = d.body;
    const key = buckets.evals.key(task.jobId, task.taskId);
    const started = performance.now();
    this.opts.metrics?.taskStarted(d.attempt);
    this.active++;
    const beat = setInterval(() => d.heartbeat(), Math.max(100, Math.floor((this.opts.ackWaitMs ?? 30_000) / 3)));
    try {
      const prev = await this.outcomes!.get(key);
      if (prev?.value.ok) return; // a duplicate of a finished evaluation: nothing to do
      this.log(`task ${task.taskId} of search ${task.jobId} started (attempt ${d.attempt}, candidate ${task.candidateId})`);
      if (this.opts.taskDelayMs) await abortableSleep(this.opts.taskDelayMs, d.signal);
      const { scores, device } = await this.evaluate(task, d.signal);
      const durationMs = performance.now() - started;
      this.log(`task ${task.taskId} of search ${task.jobId} done in ${Math.round(durationMs)} ms (${device})`);
      await this.outcomes!.put(key, { jobId: task.jobId, taskId: task.taskId, candidateId: task.candidateId, ok: true, scores, worker: this.name, attempt: d.attempt, durationMs, device, finishedAt: Date.now() });
      this.opts.metrics?.taskFinished(durationMs, 0, 0);
    } catch (err) {
      this.opts.metrics?.taskFailed();
      const final = isPermanent(err) || d.attempt >= d.maxDeliver;
      const wire = toWireError(err);
      wire.message = `evaluate candidate ${task.candidateId} on worker ${this.name} (attempt ${d.attempt}/${d.maxDeliver}): ${wire.message}`;
      this.log(`${final ? "failed" : "retrying"} ${wire.message}`);
      if (final && !d.signal.aborted) {
        // Recorded so the search ranks the candidate last instead of waiting for it.
        const o: EvalOutcome = { jobId: task.jobId, taskId: task.taskId, candidateId: task.candidateId, ok: false, scores: {}, error: wire, worker: this.name, attempt: d.attempt, durationMs: performance.now() - started, finishedAt: Date.now() };
        await this.outcomes!.put(key, o).catch((e) => this.log(`could not record failure of ${key}: ${errorMessage(e)}`));
      }
      throw err;
    } finally {
      clearInterval(beat);
      this.active--;
    }
  }

  /** Merges the candidate in memory and scores it; throws on any failure. */
  async evaluate(task: EvalTask, signal?: AbortSignal): Promise<{ scores: Record<string, number>; device: "cpu" | "cuda" }> {
    return inSpan(SPAN_NAMES.evaluate, { [ATTR_JOB_ID]: task.jobId, [ATTR_TASK_ID]: task.taskId, "mergeloom.candidate.id": task.candidateId, [ATTR_WORKER_NAME]: this.name }, () =>
      this.evaluateUntraced(task, signal),
    );
  }

  private async evaluateUntraced(task: EvalTask, signal?: AbortSignal): Promise<{ scores: Record<string, number>; device: "cpu" | "cuda" }> {
    const command = task.fitness.tasks.find((t) => t.kind === "command");
    if (command) {
      // A named scorer (kind: scorer) is the way to run a command here: the worker's own.
      // Running shell commands named by queue messages would let anyone who can publish run code here.
      throw new MergeloomError("EVAL_FAILED", `evaluate candidate ${task.candidateId}: fitness task '${command.name}' is a command task, which runs only in-process; run the search without --nats`);
    }
    const roots = this.opts.storageRoots;
    if (roots) await checkFitnessPaths(task.fitness, roots);
    const config = parseMergeConfig(task.mergeYaml, `candidate ${task.candidateId}`, this.registry);
    const plan = await buildPlan(config, { registry: this.registry, storageRoots: roots, open: (ref) => this.checkpoints.open(ref) });
    if (roots) await checkInputPaths(plan.tensors, roots);
    signal?.throwIfAborted();
    const scores: Record<string, number> = {};
    let device: "cpu" | "cuda" = "cpu";
    const scorerTasks = task.fitness.tasks.filter((t) => t.kind === "scorer");
    if (task.fitness.tasks.some((t) => t.kind === "accuracy" || t.kind === "entropy")) {
      if (this.merger.cacheBytes > (this.opts.maxCacheBytes ?? 8 * 2 ** 30)) this.merger.clear();
      const weights = await this.merger.mergeAll(plan.tensors, task.seed);
      signal?.throwIfAborted();
      const fitness = await this.acquire(task.fitness);
      try {
        Object.assign(scores, await fitness.score(weights));
        device = fitness.device;
      } finally {
        this.releaseSession(task.fitness, fitness);
      }
    }
    if (scorerTasks.length) {
      const scorers = this.opts.scorers ?? new Map();
      const missing = scorersUsed(scorerTasks).filter((n) => !scorers.has(n));
      // Cannot happen through the per-scorer queues; a permanent error if a task was misrouted.
      if (missing.length) throw new MergeloomError("EVAL_FAILED", `evaluate candidate ${task.candidateId}: worker ${this.name} has no scorer ${missing.join(", ")}`);
      await this.opts.scratch!.use(plan.bytesToWrite, `evaluate candidate ${task.candidateId}`, async (dir) => {
        const ckpt = join(dir, "model");
        await writeCandidateCheckpoint(config, ckpt, task.seed);
        for (const t of scorerTasks) {
          signal?.throwIfAborted();
          scores[t.name] = await runScorerTask(t, scorers, ckpt, { signal, gpu: this.opts.gpu });
        }
      });
    }
    return { scores, device };
  }

  private async acquire(spec: FitnessSpec): Promise<Fitness> {
    const k = specKey(spec);
    const idle = this.sessions.get(k);
    const f = idle?.pop();
    if (f) return f;
    // Split the cores between the slots unless the spec pins the thread count (as LocalCandidateEvaluator).
    const n = this.concurrency;
    const threads = spec.threads ?? (n > 1 ? Math.max(1, Math.floor(availableParallelism() / n)) : undefined);
    return createFitness(spec, this.opts.device ?? "auto", threads);
  }

  private releaseSession(spec: FitnessSpec, f: Fitness): void {
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
    this.draining = true;
    const all = [this.consumer, ...this.scorerConsumers].filter((c): c is Stoppable => !!c);
    this.consumer = undefined;
    this.scorerConsumers = [];
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
    for (const list of this.sessions.values()) for (const s of list) await s.release().catch(() => {});
    this.sessions.clear();
    this.io.close();
    this.merger.clear();
  }
}

function specKey(spec: FitnessSpec): string {
  return createHash("sha256").update(JSON.stringify(spec)).digest("hex");
}

/** The graph, vocabulary and data files must lie under the storage roots. */
async function checkFitnessPaths(spec: FitnessSpec, roots: readonly string[]): Promise<void> {
  await checkPathsInsideRoots([spec.graph, spec.vocab, ...spec.tasks.map((t) => t.data)].filter((f): f is string => f !== undefined), roots);
}

/** Every local input the plan reads, as for merge tasks. */
async function checkInputPaths(tensors: readonly PlannedTensor[], roots: readonly string[]): Promise<void> {
  await checkPathsInsideRoots(inputUris(tensors), roots);
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}
