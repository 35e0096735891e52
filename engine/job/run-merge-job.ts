/**
 * A whole merge: plan (headers only) → temporary output directory → tasks → assemble → atomic
 * rename. Tasks go to a TaskDispatcher: in-process threads by default, NATS workers with --nats.
 * Any failure removes the temporary directory, so no half-written model ever looks complete.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { MergeloomError } from "@mergeloom/proto/errors";
import { StorageError } from "../errors/index.js";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import type { JobRecord } from "@mergeloom/proto/records";
import { toWireError } from "@mergeloom/proto/wire-error";
import { existsSync } from "node:fs";
import {
  ATTR_BYTES_READ,
  ATTR_BYTES_WRITTEN,
  ATTR_JOB_ID,
  ATTR_MERGE_METHOD,
  ATTR_TASK_COUNT,
  ATTR_TENSOR_COUNT,
  inSpan,
  SPAN_NAMES,
} from "@mergeloom/proto/tracing";
import { createDefaultRegistry } from "../methods/all-methods.js";
import { checkOutputPath, OutputDir } from "../output/output-dir.js";
import { currentOwner } from "../output/process-owner.js";
import type { HttpOptions } from "../storage/http-byte-source.js";
import { localPath } from "../driver/tensor-io.js";
import { modelLocation } from "../storage/model-location.js";
import { checkOutputAgainstInputs, localInputsOf } from "../output/check-output-path.js";
import { checkFreeSpace, extraOutputBytes } from "../output/check-free-space.js";
import { assertNoLiveJobFor, JOB_HEARTBEAT_MS, ownerMeta } from "./check-job-conflict.js";
import { writeJobMarker, removeJobMarker } from "../output/job-marker.js";
import { preallocateShards } from "../output/shard-layout.js";
import { parseMergeConfig, type ParseOptions } from "../config/parse-merge-config.js";
import type { MergeConfig } from "../config/merge-config.js";
import { buildPlan, type MergePlan } from "../plan/build-plan.js";
import { buildTasks } from "../plan/build-tasks.js";
import { estimatePeakMemory } from "../plan/estimate-memory.js";
import { assembleOutput } from "../output/assemble-output.js";
import type { NumericsMode } from "../numerics/numerics-mode.js";
import type { MergeEventSink } from "./merge-events.js";

export interface TaskDispatcher {
  /** Runs every task to completion (or throws); reports progress per finished task. */
  runTasks(tasks: readonly MergeTask[], onResult: (r: MergeTaskResult) => void, signal?: AbortSignal): Promise<void>;
  readonly threads: number;
  /** Largest task message the dispatcher carries (default MAX_MESSAGE_BYTES; Infinity in-process). */
  readonly maxMessageBytes?: number;
  /** Durable job state (dispatchers over a transport); absent = nothing to resume. */
  loadJob?(jobId: string): Promise<JobRecord | null>;
  /** Every job record (to refuse a second live run on the same output). */
  listJobs?(): Promise<JobRecord[]>;
  saveJob?(rec: JobRecord): Promise<void>;
  resetJob?(jobId: string): Promise<void>;
}

export interface MergeJobOptions {
  out: string;
  seed: number;
  maxShardBytes: number;
  overwrite?: boolean;
  taskBytes?: number;
  /** Workers deliver outputs through the NATS object store instead of a shared volume. */
  output?: "file" | "object";
  jobId?: string;
  signal?: AbortSignal;
  onEvent?: MergeEventSink;
  /** `--numerics`: "mergekit" reproduces mergekit's torch arithmetic in the compute dtype. */
  numerics?: NumericsMode;
  /** Copy the tokenizer files to the output (mergekit-yaml's --copy-tokenizer, default true). */
  copyTokenizer?: boolean;
  /** Write README.md and mergekit_config.yml (mergekit-yaml's --write-model-card, default true). */
  writeModelCard?: boolean;
  /** Merge models whose architectures differ (mergekit-yaml's --allow-crimes). */
  allowCrimes?: boolean;
  /** Warnings from the command line, emitted before the config's. */
  warnings?: readonly string[];
  /** Check the output filesystem's free space against the plan before starting (default true). */
  spaceCheck?: boolean;
  /** Reading http(s) inputs while planning. */
  http?: HttpOptions;
  /** Called with the open output directory (and undefined once it is committed or removed), so a signal handler can clean up. */
  onOutputDir?: (dir: OutputDir | undefined) => void;
}

export async function loadConfig(path: string, opts: ParseOptions = {}): Promise<MergeConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new MergeloomError(
      "CONFIG_INVALID",
      `read config ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "file does not exist" : (err as Error).message}`,
      { cause: err },
    );
  }
  return parseMergeConfig(text, path, createDefaultRegistry(), opts);
}

export async function planMerge(
  config: MergeConfig,
  opts: { http?: HttpOptions; numerics?: NumericsMode; allowCrimes?: boolean; pins?: Readonly<Record<string, string>> } = {},
): Promise<MergePlan> {
  return buildPlan(config, { registry: createDefaultRegistry(), http: opts.http, numerics: opts.numerics, allowCrimes: opts.allowCrimes, pins: opts.pins });
}

const PIN_PREFIX = "pin:";

/** Hub pins kept in a job record's meta (`pin:<ref>` → sha), so a resumed job reads the same commits. */
export function pinsOf(rec: JobRecord | null | undefined): Record<string, string> | undefined {
  if (!rec?.meta) return undefined;
  const pins: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec.meta)) if (k.startsWith(PIN_PREFIX) && typeof v === "string") pins[k.slice(PIN_PREFIX.length)] = v;
  return Object.keys(pins).length ? pins : undefined;
}

/** A job id that is stable for the same config, seed and output, so a restarted coordinator resumes it. */
export function deriveJobId(config: MergeConfig, seed: number, out: string, numerics: NumericsMode = "default"): string {
  // The default mode hashes as before, so jobs started by an earlier version still resume.
  const mode = numerics === "default" ? "" : `\0numerics=${numerics}`;
  return createHash("sha256").update(config.sourceText).update(`\0${seed}\0${out}${mode}`).digest("hex").slice(0, 16);
}

export async function runMergeJob(
  config: MergeConfig,
  dispatcher: TaskDispatcher,
  opts: MergeJobOptions,
): Promise<{ out: string; checksum?: string; resumed: boolean }> {
  const jobId = opts.jobId ?? randomUUID();
  return inSpan(SPAN_NAMES.jobMerge, { [ATTR_JOB_ID]: jobId }, () => runTracedJob(config, dispatcher, { ...opts, jobId }));
}

async function runTracedJob(
  config: MergeConfig,
  dispatcher: TaskDispatcher,
  opts: MergeJobOptions & { jobId: string },
): Promise<{ out: string; checksum?: string; resumed: boolean }> {
  const started = performance.now();
  const emit = opts.onEvent ?? (() => {});
  const jobId = opts.jobId;
  for (const message of [...(opts.warnings ?? []), ...(config.warnings ?? [])]) emit({ type: "warning", message });
  // Resume: the same job id (same config, seed and output) with its temporary directory still there.
  const prior = await dispatcher.loadJob?.(jobId);
  const priorActive = !!prior && ["planned", "running", "assembling"].includes(prior.state);
  const plan = await inSpan(SPAN_NAMES.plan, { [ATTR_JOB_ID]: jobId }, async (span) => {
    // A resumed job keeps the Hub commits it was planned with, even if a branch moved since.
    const p = await planMerge(config, {
      http: opts.http,
      numerics: opts.numerics,
      allowCrimes: opts.allowCrimes,
      pins: priorActive ? pinsOf(prior) : undefined,
    });
    span.setAttribute(ATTR_TENSOR_COUNT, p.tensors.length);
    span.setAttribute(ATTR_MERGE_METHOD, p.method.name);
    return p;
  });
  const discard = opts.out.startsWith("discard://");
  const me = currentOwner();
  if (!discard) {
    await checkOutputPath(opts.out);
    await checkOutputAgainstInputs(opts.out, localInputsOf(plan));
    if (dispatcher.listJobs) assertNoLiveJobFor(opts.out, await dispatcher.listJobs(), me);
  }
  const resumable = priorActive && (discard || existsSync(prior!.outputDir));
  let outDir: OutputDir | undefined;
  if (!discard) {
    outDir = resumable
      ? await OutputDir.adopt(opts.out, prior!.outputDir, { overwrite: opts.overwrite, jobId })
      : await OutputDir.create(opts.out, { overwrite: opts.overwrite, jobId });
    opts.onOutputDir?.(outDir);
    // Workers write only into a directory whose marker names their task's job (worker/runtime/check-task-output.ts).
    await writeJobMarker(outDir.path, jobId).catch(async (err: unknown) => {
      await outDir?.abort().catch(() => {});
      throw new StorageError(`create output ${opts.out}: writing the job marker failed (${(err as Error).message})`, { cause: err });
    });
  }
  if (prior && !resumable) await dispatcher.resetJob?.(jobId);
  const record: JobRecord = {
    jobId,
    state: "planned",
    createdAt: resumable ? prior!.createdAt : Date.now(),
    updatedAt: Date.now(),
    totalTasks: 0,
    doneTasks: 0,
    failedTasks: 0,
    outputDir: outDir ? outDir.path : opts.out,
    meta: {
      out: opts.out,
      seed: opts.seed,
      method: plan.method.name,
      ...ownerMeta(me),
      ...Object.fromEntries(Object.entries(plan.pins).map(([r, sha]) => [PIN_PREFIX + r, sha])),
    },
  };
  let heartbeat: NodeJS.Timeout | undefined;
  try {
    const { shards, tasks } = buildTasks(plan, {
      jobId,
      seed: opts.seed,
      maxShardBytes: opts.maxShardBytes,
      outDir: outDir ? outDir.path : "discard://",
      taskBytes: opts.taskBytes,
      output: opts.output,
      maxMessageBytes: dispatcher.maxMessageBytes,
    });
    record.totalTasks = tasks.length;
    emit({
      type: "plan",
      jobId,
      tensors: plan.tensors.length,
      tasks: tasks.length,
      shards: shards.length,
      bytesToRead: plan.bytesToRead,
      bytesToWrite: plan.bytesToWrite,
      peakMemoryBytes: estimatePeakMemory(plan, dispatcher.threads),
    });
    for (const message of plan.warnings) emit({ type: "warning", message });
    if (resumable) emit({ type: "warning", message: `resuming job ${jobId} in ${record.outputDir}: finished tasks are kept` });
    if (outDir && !resumable && opts.spaceCheck !== false) {
      const tok = plan.config.tokenizerSource;
      const tokRef = tok === undefined || tok === "base" ? plan.configModel : tok;
      const need = shards.reduce((a, s) => a + s.fileBytes, 0) + (await extraOutputBytes(localPath(modelLocation(tokRef))));
      await checkFreeSpace(opts.out, need);
    }
    if (outDir && !resumable) await preallocateShards(outDir.path, shards);
    record.state = "running";
    await dispatcher.saveJob?.(record);
    // Keeps the record fresh so a coordinator on another host can tell this run is alive.
    if (dispatcher.saveJob && !discard) {
      heartbeat = setInterval(() => void dispatcher.saveJob?.(record).catch(() => undefined), JOB_HEARTBEAT_MS);
      heartbeat.unref();
    }
    let done = 0;
    let bytesRead = 0;
    let bytesWritten = 0;
    let networkBytes = 0;
    const digests = new Map<string, string>();
    await inSpan(SPAN_NAMES.dispatch, { [ATTR_JOB_ID]: jobId, [ATTR_TASK_COUNT]: tasks.length }, async (span) => {
      await dispatcher.runTasks(
        tasks,
        (r) => {
          done++;
          bytesRead += r.bytesRead;
          bytesWritten += r.bytesWritten;
          for (const t of r.tensors) if (t.sha256) digests.set(t.name, t.sha256);
          networkBytes += r.networkBytes ?? 0;
          for (const message of r.warnings ?? []) emit({ type: "warning", message });
          emit({ type: "task", taskId: r.taskId, worker: r.worker, done, total: tasks.length, ...(networkBytes ? { networkBytes } : {}) });
        },
        opts.signal,
      );
      span.setAttribute(ATTR_BYTES_READ, bytesRead);
      span.setAttribute(ATTR_BYTES_WRITTEN, bytesWritten);
    });
    clearInterval(heartbeat);
    record.doneTasks = done;
    let checksum: string | undefined;
    if (discard) {
      const h = createHash("sha256");
      for (const t of plan.tensors) h.update(`${t.name}:${digests.get(t.name) ?? ""}\n`);
      checksum = h.digest("hex");
    } else {
      record.state = "assembling";
      await dispatcher.saveJob?.(record);
      emit({ type: "assemble", out: opts.out });
      await inSpan(SPAN_NAMES.assemble, { [ATTR_JOB_ID]: jobId }, async () => {
        await removeJobMarker(outDir!.path); // every task is done; the marker is no part of the model
        await assembleOutput(outDir!.path, plan, shards, {
          copyTokenizer: opts.copyTokenizer,
          writeModelCard: opts.writeModelCard,
          onWarning: (message) => emit({ type: "warning", message }),
        });
        await outDir!.commit();
      });
      opts.onOutputDir?.(undefined);
    }
    record.state = "done";
    await dispatcher.saveJob?.(record);
    emit({
      type: "done",
      out: opts.out,
      tensors: plan.tensors.length,
      bytesRead,
      bytesWritten,
      seconds: (performance.now() - started) / 1000,
      checksum,
    });
    return { out: opts.out, checksum, resumed: resumable };
  } catch (err) {
    clearInterval(heartbeat);
    const cancelled = err instanceof MergeloomError && err.code === "CANCELLED";
    await dispatcher.saveJob?.({ ...record, state: cancelled ? "cancelled" : "failed", error: toWireError(err) }).catch(() => {});
    await outDir?.abort().catch(() => {});
    opts.onOutputDir?.(undefined);
    throw err;
  }
}
