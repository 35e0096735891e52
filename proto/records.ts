/**
 * Records kept in KV (job state, worker registry) and the error report a worker publishes when a
 * task fails. Plain data, validated by proto/schemas.ts on every decode.
 */
import type { ErrorCode } from "./errors.js";

/** How an error crosses the wire; `retryable` survives so the receiver can decide the same way. */
export interface WireError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

export type JobState = "planned" | "running" | "assembling" | "done" | "failed" | "cancelled";
export const JOB_STATES: readonly JobState[] = ["planned", "running", "assembling", "done", "failed", "cancelled"];

/** One merge job, keyed by job id in the jobs bucket; updated with compare-and-set on revision. */
export interface JobRecord {
  jobId: string;
  state: JobState;
  /** Epoch milliseconds. */
  createdAt: number;
  updatedAt: number;
  totalTasks: number;
  doneTasks: number;
  failedTasks: number;
  /** Where the merged checkpoint is assembled. */
  outputDir: string;
  /** Coordinator instance that owns the job (takes over after a restart). */
  coordinator?: string;
  error?: WireError;
  /** Free-form, small, for fields the dispatcher adds without a protocol change. */
  meta?: Record<string, string | number | boolean>;
}

export type WorkerStatus = "idle" | "busy" | "draining";
export const WORKER_STATUSES: readonly WorkerStatus[] = ["idle", "busy", "draining"];

/** A live worker, keyed by worker id in the workers bucket (which has a TTL: stale = gone). */
export interface WorkerRecord {
  workerId: string;
  host: string;
  pid: number;
  /** mergeloom package version the worker runs. */
  version: string;
  protocol: number;
  concurrency: number;
  activeTasks: number;
  status: WorkerStatus;
  methods: string[];
  startedAt: number;
  heartbeatAt: number;
  /** Merge threads the worker runs. */
  threads: number;
  /** Total memory of the machine, bytes. */
  memoryBytes: number;
  /** Accelerator the worker found (e.g. "cuda" with device names), absent on CPU-only nodes. */
  gpu?: string;
  /** Worker name given with --name (defaults to host-pid). */
  name: string;
}

/**
 * The outcome of one task, keyed `<jobId>.<taskId>` in the tasks bucket. Written by the worker
 * before it acks, so a coordinator that restarts finds every finished task there.
 */
export interface TaskOutcome {
  jobId: string;
  taskId: string;
  ok: boolean;
  result?: import("./merge-task.js").MergeTaskResult;
  error?: WireError;
  worker: string;
  attempt: number;
  finishedAt: number;
}

/** Published on the job's result subject when a task fails for good (or an attempt fails). */
export interface ErrorReport {
  jobId: string;
  taskId: string;
  attempt: number;
  /** True when no redelivery will follow (permanent error or last attempt). */
  final: boolean;
  worker?: string;
  error: WireError;
}

/**
 * The fitness spec an evaluation task carries (mirrors worker/eval/fitness FitnessSpec, kept here
 * so proto depends on nothing). Paths are read by the worker, relative to its working directory.
 */
export interface EvalFitnessSpec {
  graph?: string;
  vocab?: string;
  batchSize: number;
  threads?: number;
  objective: "weighted" | "pareto";
  tasks: { name: string; kind: "accuracy" | "entropy" | "command" | "scorer"; data?: string; command?: string; scorer?: string; key?: string; weight: number; limit?: number }[];
}

/** One candidate of an evolutionary search to merge (in memory) and score on a worker. */
export interface EvalTask {
  /** The search (one per search, stable across resumes). */
  jobId: string;
  /** Unique within the search: one per (generation, candidate). */
  taskId: string;
  /** The search's candidate id (`g3-c7`, or a baseline's name). */
  candidateId: string;
  /** The candidate as mergekit YAML text. */
  mergeYaml: string;
  fitness: EvalFitnessSpec;
  /** Merge seed (DARE masks), as `mergeloom merge --random-seed`. */
  seed: number;
}

/**
 * The outcome of one evaluation task, keyed `<jobId>.<taskId>` in the eval bucket; written by the
 * worker before it acks. `ok: false` with `error` is a candidate that failed for good (it ranks last).
 */
export interface EvalOutcome {
  jobId: string;
  taskId: string;
  candidateId: string;
  ok: boolean;
  scores: Record<string, number>;
  error?: WireError;
  worker: string;
  attempt: number;
  /** Merge + scoring time on the worker. */
  durationMs: number;
  /** Execution provider that scored the candidate. */
  device?: "cpu" | "cuda";
  finishedAt: number;
}
