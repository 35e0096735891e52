/**
 * zod schemas for every message kind. Decoding validates against these, so a malformed message is
 * rejected at the boundary with the path of the bad field rather than deep inside a kernel.
 * Each schema is typed against the TypeScript interface it checks, so the two cannot drift.
 */
import { z } from "zod";
import { DTYPES, type DType } from "./dtype.js";
import { ERROR_CODES } from "./errors.js";
import type { MergeTask, MergeTaskResult, TensorSource } from "./merge-task.js";
import {
  JOB_STATES,
  WORKER_STATUSES,
  type ErrorReport,
  type FitnessSpec,
  type EvalOutcome,
  type EvalTask,
  type JobRecord,
  type TaskOutcome,
  type WireError,
  type WorkerRecord,
} from "./records.js";

const count = z.number().int().nonnegative();
const dim = z.number().int().nonnegative();
const paramValue = z.union([z.number(), z.boolean(), z.string()]);
const dtype = z.enum(DTYPES as [DType, ...DType[]]);

const tensorSource: z.ZodType<TensorSource> = z.object({
  uri: z.string().min(1),
  offset: count,
  byteLength: count,
  dtype,
  shape: z.array(dim),
  tensor: z.string(),
});

export const MergeTaskSchema: z.ZodType<MergeTask> = z.object({
  jobId: z.string().min(1),
  taskId: z.string().min(1),
  seed: z.number().int(),
  output: z.enum(["file", "object"]).optional(),
  tensors: z.array(
    z.object({
      name: z.string().min(1),
      shape: z.array(dim),
      outDtype: dtype,
      method: z.string().min(1),
      params: z.record(z.string(), paramValue),
      inputs: z.array(
        z.object({
          model: z.string(),
          source: tensorSource,
          params: z.record(z.string(), paramValue),
          addVectors: z.array(z.object({ source: tensorSource, scale: z.number() })).optional(),
          lora: z.object({ a: tensorSource, b: tensorSource, scale: z.number(), transpose: z.boolean() }).optional(),
          rowMap: z.object({ runs: z.array(count) }).optional(),
        }),
      ),
      vocab: z.object({ rows: count, defaults: z.array(z.object({ row: count, from: z.array(z.tuple([count, count])) })), dtype }).optional(),
      baseIndex: z.number().int().min(-1),
      computeDtype: z.enum(["F32", "F16", "BF16"]).optional(),
      computeTorch: z.literal("1.13").optional(),
      dest: z.object({ uri: z.string().min(1), offset: count, byteLength: count }),
    }),
  ),
});

export const MergeTaskResultSchema: z.ZodType<MergeTaskResult> = z.object({
  taskId: z.string().min(1),
  tensors: z.array(
    z.object({
      name: z.string(),
      byteLength: count,
      sha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional(),
    }),
  ),
  bytesRead: count,
  bytesWritten: count,
  durationMs: z.number().nonnegative(),
  worker: z.string().optional(),
  networkBytes: count.optional(),
  cacheBytes: count.optional(),
  hosts: z.record(z.string().max(255), count).optional(),
  warnings: z.array(z.string().max(2000)).max(10_000).optional(),
});

export const WireErrorSchema: z.ZodType<WireError> = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  retryable: z.boolean(),
});

export const ErrorReportSchema: z.ZodType<ErrorReport> = z.object({
  jobId: z.string().min(1),
  taskId: z.string().min(1),
  attempt: z.number().int().positive(),
  final: z.boolean(),
  worker: z.string().optional(),
  error: WireErrorSchema,
});

export const JobRecordSchema: z.ZodType<JobRecord> = z.object({
  jobId: z.string().min(1),
  state: z.enum(JOB_STATES as [JobRecord["state"], ...JobRecord["state"][]]),
  createdAt: z.number(),
  updatedAt: z.number(),
  totalTasks: count,
  doneTasks: count,
  failedTasks: count,
  outputDir: z.string(),
  coordinator: z.string().optional(),
  error: WireErrorSchema.optional(),
  meta: z.record(z.string(), paramValue).optional(),
});

export const WorkerRecordSchema: z.ZodType<WorkerRecord> = z.object({
  workerId: z.string().min(1),
  host: z.string(),
  pid: z.number().int(),
  version: z.string(),
  protocol: z.number().int().positive(),
  concurrency: z.number().int().positive(),
  activeTasks: count,
  status: z.enum(WORKER_STATUSES as [WorkerRecord["status"], ...WorkerRecord["status"][]]),
  methods: z.array(z.string()),
  startedAt: z.number(),
  heartbeatAt: z.number(),
  threads: z.number().int().nonnegative(),
  memoryBytes: z.number().nonnegative(),
  gpu: z.string().optional(),
  name: z.string().min(1),
});

export const TaskOutcomeSchema: z.ZodType<TaskOutcome> = z.object({
  jobId: z.string().min(1),
  taskId: z.string().min(1),
  ok: z.boolean(),
  result: MergeTaskResultSchema.optional(),
  error: WireErrorSchema.optional(),
  worker: z.string(),
  attempt: z.number().int().positive(),
  finishedAt: z.number(),
});

const evalFitnessSpec: z.ZodType<FitnessSpec> = z.object({
  graph: z.string().min(1).optional(),
  vocab: z.string().min(1).optional(),
  batchSize: z.number().int().positive(),
  threads: z.number().int().positive().optional(),
  objective: z.enum(["weighted", "pareto"]),
  tasks: z
    .array(
      z.object({
        name: z.string().min(1),
        kind: z.enum(["accuracy", "likelihood", "entropy", "command", "scorer"]),
        data: z.string().min(1).optional(),
        command: z.string().optional(),
        scorer: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/)
          .optional(),
        key: z.string().optional(),
        weight: z.number().nonnegative(),
        limit: z.number().int().positive().optional(),
        measure: z.enum(["log_prob", "answer_prob"]).optional(),
      }),
    )
    .min(1),
});

export const EvalTaskSchema: z.ZodType<EvalTask> = z.object({
  jobId: z.string().min(1),
  taskId: z.string().min(1),
  candidateId: z.string().min(1),
  mergeYaml: z.string().min(1),
  fitness: evalFitnessSpec,
  seed: z.number().int(),
});

// Scores may be ±Infinity or NaN (msgpack keeps them), so no finiteness check.
export const EvalOutcomeSchema: z.ZodType<EvalOutcome> = z.object({
  jobId: z.string().min(1),
  taskId: z.string().min(1),
  candidateId: z.string().min(1),
  ok: z.boolean(),
  scores: z.record(z.string(), z.number().or(z.nan())),
  error: WireErrorSchema.optional(),
  worker: z.string(),
  attempt: z.number().int().positive(),
  durationMs: z.number().nonnegative(),
  device: z.enum(["cpu", "cuda"]).optional(),
  finishedAt: z.number(),
});

/** Every message kind and the body type it carries. */
export interface MessageMap {
  "merge-task": MergeTask;
  "merge-result": MergeTaskResult;
  "error-report": ErrorReport;
  job: JobRecord;
  worker: WorkerRecord;
  "task-outcome": TaskOutcome;
  "eval-task": EvalTask;
  "eval-outcome": EvalOutcome;
}
export type MessageKind = keyof MessageMap;

export const MESSAGE_SCHEMAS: { [K in MessageKind]: z.ZodType<MessageMap[K]> } = {
  "merge-task": MergeTaskSchema,
  "merge-result": MergeTaskResultSchema,
  "error-report": ErrorReportSchema,
  job: JobRecordSchema,
  worker: WorkerRecordSchema,
  "task-outcome": TaskOutcomeSchema,
  "eval-task": EvalTaskSchema,
  "eval-outcome": EvalOutcomeSchema,
};
export const MESSAGE_KINDS = Object.keys(MESSAGE_SCHEMAS) as MessageKind[];

/** A decoded message: its kind and body, discriminated on `kind`. */
export type AnyMessage = { [K in MessageKind]: { kind: K; body: MessageMap[K] } }[MessageKind];
