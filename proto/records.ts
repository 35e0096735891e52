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

export type FitnessTaskKind = "accuracy" | "likelihood" | "entropy" | "command" | "scorer";

/** One scored task of a fitness (see engine/eval/fitness for what each kind measures). */
export interface FitnessTask {
  name: string;
  kind: FitnessTaskKind;
  /** JSONL file (accuracy, likelihood, entropy). */
  data?: string;
  /** Shell command (command); `{checkpoint}` is replaced by the checkpoint path, also in $MERGELOOM_CHECKPOINT. */
  command?: string;
  /** Name of a worker-side scorer (scorer): the worker's configured command runs, not one from the config. */
  scorer?: string;
  /** Field of the command's / scorer's JSON object to read (default "score"). */
  key?: string;
  /** Weight in the combined fitness (default 1). */
  weight: number;
  /** First N examples of `data` only. */
  limit?: number;
  /** likelihood: "log_prob" (default; mean log-probability per answer token) or "answer_prob" (mean probability of the whole answer). */
  measure?: LikelihoodMeasure;
}

export type LikelihoodMeasure = "log_prob" | "answer_prob";

/**
 * What a search scores a candidate with; an evaluation task carries it. Paths are read by the
 * worker, relative to its working directory.
 */
export interface FitnessSpec {
  /** ONNX graph taking the weights as inputs (needed by accuracy, likelihood and entropy tasks). */
  graph?: string;
  /** vocab.json of the character tokenizer. */
  vocab?: string;
  batchSize: number;
  /** onnxruntime intra-op threads per evaluator (default: onnxruntime's choice). */
  threads?: number;
  /** weighted: one scalar; pareto: also keep the non-dominated set over the task scores. */
  objective: "weighted" | "pareto";
  tasks: FitnessTask[];
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
  fitness: FitnessSpec;
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
