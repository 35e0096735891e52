/** `mergeloom merge`, `mergeloom plan` and `mergeloom vector extract`. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { DTYPE_BYTES } from "@mergeloom/proto/dtype";
import { EmbeddedDispatcher } from "../dispatch/embedded-dispatcher.js";
import { TransportDispatcher } from "../dispatch/transport-dispatcher.js";
import { traced } from "@mergeloom/transport";
import { connectNatsTransport } from "@mergeloom/transport";
import { addNatsOptions, natsOptionsFrom, type NatsFlags } from "./nats-options.js";
import { redactUrls } from "@mergeloom/transport";
import { deriveJobId, loadConfig, planMerge, runMergeJob, type TaskDispatcher } from "@mergeloom/engine/job";
import { buildTasks } from "@mergeloom/engine/plan";
import { estimatePeakMemory } from "@mergeloom/engine/plan";
import { createEventRenderer, formatBytes } from "./render-events.js";
import type { MergeEventSink } from "@mergeloom/engine/job";
import { parseIntFlag, parseSize } from "./parse-size.js";
import { addIgnoredMergekitOptions, ignoredMergekitWarnings } from "./mergekit-options.js";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { parseConfigDType, CONFIG_DTYPE_NAMES } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import { NUMERICS_MODES, type NumericsMode } from "@mergeloom/engine/numerics";
import { downloadConfig } from "./download-command.js";
import { constants as osConstants } from "node:os";
import type { OutputDir } from "@mergeloom/engine/output";
import { addHttpOptions, httpOptionsFrom, type HttpFlags } from "./http-options.js";

export const DEFAULT_SHARD_BYTES = 5_000_000_000;

interface MergeFlags extends NatsFlags, HttpFlags {
  spaceCheck?: boolean;
  outputVia?: string;
  workerWaitTimeout?: string;
  output: string;
  outShardSize: string;
  randomSeed: string;
  threads?: string;
  json?: boolean;
  overwrite?: boolean;
  taskSize?: string;
  numerics?: string;
  /** mergekit-yaml's options mergeloom honours. */
  copyTokenizer?: boolean;
  writeModelCard?: boolean;
  allowCrimes?: boolean;
  quiet?: boolean;
  /** Warnings about mergekit-yaml options that do not apply, emitted with the config's. */
  optionWarnings?: string[];
  download?: boolean;
}

type MergeCommandFlags = Omit<MergeFlags, "output"> & {
  output?: string;
  strict?: boolean;
  numThreads?: string;
  safeSerialization?: boolean;
} & Record<string, unknown>;

export function registerMergeCommands(program: Command): void {
  const merge = program
    .command("merge")
    .description("merge the models of a mergekit YAML config into OUT (an HF model directory); takes mergekit-yaml's arguments and options too")
    .argument("<config>", "mergekit YAML config")
    .argument("[out]", "output model directory (written atomically); or -o OUT")
    .option("-o, --output <dir>", "output model directory (same as the OUT argument)")
    .option("--strict", "refuse what mergekit silently ignores (unknown keys and parameters, duplicate keys and models) instead of warning")
    .option("--out-shard-size <bytes>", "maximum bytes of tensor data per output shard (mergekit's 5B = 5e9, 5GB, 500MB)", "5B")
    .option("--random-seed <n>", "seed for DARE/DELLA masks; each tensor derives its stream from (seed, name)", "0")
    .option("--threads <n>", "merge threads (default: all cores; 0 = the main thread only)")
    .option("-j, --num-threads <n>", "mergekit-yaml's name for --threads")
    .option("--copy-tokenizer", "copy the tokenizer files of the tokenizer source to OUT (default)")
    .option("--no-copy-tokenizer", "write no tokenizer files")
    .option("--write-model-card", "write README.md and mergekit_config.yml (default)")
    .option("--no-write-model-card", "write no model card")
    .option("--allow-crimes", "allow models whose config.json architectures differ")
    .option("--no-allow-crimes", "refuse models of different architectures (default)")
    .option("--safe-serialization", "write safetensors (default, and the only format written)")
    .option("--no-safe-serialization", "accepted for mergekit-yaml; safetensors are written regardless")
    .option("--quiet", "no progress bar (mergekit-yaml's --quiet)")
    .option("--no-quiet", "progress bar on a TTY (default)")
    .option("--task-size <bytes>", "output bytes per task (layers are never split; default: one layer per task)")
    .option(
      "--numerics <mode>",
      "'default' (fp32 arithmetic, rounded once), 'mergekit' (mergekit's torch 2.x CPU arithmetic in the compute dtype, bit for bit) or 'mergekit-torch1.13' (mergekit on Debian's torch 1.13, no MKL)",
      "default",
    )
    .option("--overwrite", "replace OUT if it is an earlier mergeloom output (it has a .mergeloom-output marker and only model files)")
    .option("--no-space-check", "skip checking the output filesystem's free space against the plan before starting")
    .option("--json", "print one JSON object per event instead of a progress bar")
    .option(
      "--output-via <mode>",
      "with --nats: how workers deliver tensors: 'file' (a volume shared with the coordinator) or 'object' (the NATS object store)",
      "file",
    )
    .option(
      "--worker-wait-timeout <seconds>",
      "with --nats: fail when no worker is connected for this long, at the start or after every worker left (default: keep waiting, with warnings)",
    )
    .option("--download", "first download the config's Hub models into the Hugging Face cache (as `mergeloom download`)");
  addIgnoredMergekitOptions(merge);
  addHttpOptions(merge);
  addNatsOptions(merge).action(async (config: string, out: string | undefined, flags: MergeCommandFlags) => {
    const output = resolveOutputArg(out, flags.output);
    httpOptionsFrom(flags); // checked, and in force for the download below
    const cfg = await loadConfig(config, { strict: !!flags.strict });
    if (flags.download) await downloadConfig(cfg, { json: !!flags.json });
    await runWithDispatcher(cfg, { ...flags, ...mergekitFlags(flags), output });
  });

  const plan = program
    .command("plan")
    .description("validate a config and print the merge plan, reading only checkpoint headers")
    .argument("<config>", "mergekit YAML config")
    .option("--strict", "refuse what mergekit silently ignores instead of warning")
    .option("--allow-crimes", "allow models whose config.json architectures differ")
    .option("--out-shard-size <bytes>", "maximum bytes per output shard", "5B")
    .option("--threads <n>", "threads to size the memory estimate for")
    .option("--json", "print the plan as JSON")
    .option("-v, --verbose", "list every output tensor")
    .option("--numerics <mode>", "'default', 'mergekit' or 'mergekit-torch1.13' (shows each tensor's compute dtype)", "default")
    .option("--download", "first download the config's Hub models into the Hugging Face cache");
  addHttpOptions(plan).action(
    async (
      config: string,
      flags: HttpFlags & {
        outShardSize: string;
        threads?: string;
        json?: boolean;
        verbose?: boolean;
        numerics: string;
        strict?: boolean;
        allowCrimes?: boolean;
        download?: boolean;
      },
    ) => {
      const http = httpOptionsFrom(flags);
      const cfg = await loadConfig(config, { strict: !!flags.strict });
      if (flags.download) await downloadConfig(cfg, { json: flags.json });
      const numerics = parseNumerics(flags.numerics);
      const plan = await planMerge(cfg, { http, numerics, allowCrimes: !!flags.allowCrimes });
      plan.warnings.unshift(...cfg.warnings); // what mergekit ignores, then what planning found
      const threads = flags.threads === undefined ? (await import("node:os")).availableParallelism() : parseIntFlag(flags.threads, "--threads");
      const taskOpts = { jobId: "plan", seed: 0, maxShardBytes: parseSize(flags.outShardSize, "--out-shard-size"), outDir: "discard://" };
      let taskSet;
      try {
        taskSet = buildTasks(plan, taskOpts); // as a --nats merge would cut them
      } catch (err) {
        if (!(err instanceof MergeloomError && err.code === "CONFIG_INVALID")) throw err;
        plan.warnings.push(
          `${err.message.replace(/, or run without --nats$/, "")}: a merge with --nats will fail; a local merge (no --nats) has no message limit`,
        );
        taskSet = buildTasks(plan, { ...taskOpts, maxMessageBytes: Infinity });
      }
      const { shards, tasks } = taskSet;
      const peak = estimatePeakMemory(plan, threads);
      const tensors = plan.tensors.map((t) => ({
        name: t.name,
        shape: t.shape,
        dtype: t.outDtype,
        ...(t.computeDtype ? { computeDtype: t.computeDtype } : {}),
        ...(t.computeTorch ? { computeTorch: t.computeTorch } : {}),
        bytes: t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.outDtype],
        inputs: t.inputs.map((i) => ({ model: i.model, tensor: i.source.tensor, ...i.params })),
        params: t.params,
      }));
      for (const m of plan.warnings) process.stderr.write(`warning: ${m}\n`);
      if (flags.json) {
        process.stdout.write(
          JSON.stringify(
            {
              method: plan.method.name,
              numerics,
              pins: plan.pins,
              warnings: plan.warnings,
              numLayers: plan.numLayers,
              outDtype: plan.outDtype,
              tensors,
              shards: shards.map((s) => ({ file: s.file, tensors: s.entries.length, bytes: s.fileBytes })),
              tasks: tasks.length,
              bytesToRead: plan.bytesToRead,
              bytesToWrite: plan.bytesToWrite,
              peakMemoryBytes: peak,
            },
            null,
            2,
          ) + "\n",
        );
        return;
      }
      const w = (s: string) => process.stdout.write(s + "\n");
      w(`models: ${[...plan.checkpoints.keys()].map((r) => (plan.pins[r] ? `${r} (${plan.pins[r]})` : r)).join(", ")}`);
      w(`tensors: ${plan.tensors.length} in ${tasks.length} tasks → ${shards.length} shard(s)`);
      w(`read: ${formatBytes(plan.bytesToRead)}   write: ${formatBytes(plan.bytesToWrite)}   estimated peak memory (${threads} threads): ${formatBytes(peak)}`);
      if (flags.verbose)
        for (const t of tensors)
          w(
            `  ${t.name} [${t.shape.join(", ")}] ${t.dtype}${t.computeDtype ? ` (computed in ${t.computeDtype}${t.computeTorch ? ` as torch ${t.computeTorch}` : ""})` : ""} ← ${t.inputs.map((i) => `${i.model}${Object.keys(i).length > 2 ? " " + JSON.stringify(Object.fromEntries(Object.entries(i).filter(([k]) => k !== "model" && k !== "tensor"))) : ""}`).join(", ")}`,
          );
    },
  );

  const vector = program.command("vector").description("task vectors as artifacts");
  const extract = vector
    .command("extract")
    .description("write the task vector A − B as a safetensors checkpoint (add it to a model with `vectors:` in a config)")
    .argument("<a>", "fine-tuned model (e.g. the GRPO model)")
    .requiredOption("--minus <b>", "model to subtract (e.g. the SFT model it was trained from)")
    .requiredOption("-o, --output <dir>", "output directory")
    .option("--dtype <name>", `dtype of the vector (${CONFIG_DTYPE_NAMES.join(", ")})`, "float32")
    .option("--out-shard-size <bytes>", "maximum bytes per output shard", "5GB")
    .option("--threads <n>", "merge threads")
    .option("--overwrite", "replace the output if it is an earlier mergeloom output")
    .option("--no-space-check", "skip the free-space check of the output filesystem")
    .option("--json", "JSON events");
  addHttpOptions(extract).action(async (a: string, flags: MergeFlags & { minus: string; dtype: string }) => {
    if (!parseConfigDType(flags.dtype)) throw new MergeloomError("USAGE", `--dtype: unknown dtype '${flags.dtype}' (known: ${CONFIG_DTYPE_NAMES.join(", ")})`);
    // Δ = 1·A + (−1)·B through the linear method, so the vector gets the same planning checks.
    const yaml = [
      "# task vector written by `mergeloom vector extract`: A - B",
      "merge_method: linear",
      "models:",
      `  - model: ${JSON.stringify(a)}`,
      "    parameters: { weight: 1.0 }",
      `  - model: ${JSON.stringify(flags.minus)}`,
      "    parameters: { weight: -1.0 }",
      "parameters: { normalize: false }",
      `out_dtype: ${flags.dtype}`,
      "",
    ].join("\n");
    const dir = await mkdtemp(join(tmpdir(), "mergeloom-vector-"));
    try {
      const file = join(dir, "vector.yml");
      await writeFile(file, yaml);
      const cfg = parseMergeConfig(yaml, file, createDefaultRegistry());
      await runWithDispatcher(cfg, { ...flags, randomSeed: "0" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** OUT as the positional argument (mergekit-yaml's form) or -o; both only when they agree. */
function resolveOutputArg(positional: string | undefined, flag: string | undefined): string {
  if (positional !== undefined && flag !== undefined && resolve(positional) !== resolve(flag)) {
    throw new MergeloomError("USAGE", `merge: output given twice ('${positional}' and -o '${flag}'); give one`);
  }
  const out = positional ?? flag;
  if (out === undefined) throw new MergeloomError("USAGE", "merge: no output directory; write `mergeloom merge CONFIG OUT` (or -o OUT)");
  return out;
}

/** mergekit-yaml's option names mapped onto mergeloom's, and the warnings for those that do not apply. */
function mergekitFlags(flags: MergeCommandFlags): Partial<MergeFlags> {
  const warnings = ignoredMergekitWarnings(flags);
  let threads = flags.threads;
  if (flags.numThreads !== undefined) {
    if (threads !== undefined && threads !== flags.numThreads) {
      throw new MergeloomError("USAGE", `merge: --threads ${threads} and --num-threads ${flags.numThreads} disagree; give one`);
    }
    threads = flags.numThreads;
  }
  if (flags.safeSerialization === false) {
    warnings.push(
      "--no-safe-serialization is accepted for mergekit-yaml compatibility and ignored: mergeloom writes safetensors only (pickled .bin files can run code when loaded)",
    );
  }
  return { threads, optionWarnings: warnings };
}

async function createDispatcher(flags: MergeFlags, onEvent: MergeEventSink): Promise<TaskDispatcher & { close(): Promise<void> }> {
  const threads = flags.threads === undefined ? undefined : parseIntFlag(flags.threads, "--threads");
  const nats = natsOptionsFrom(flags, process.env, "coordinator", "mergeloom-coordinator");
  if (!nats) return EmbeddedDispatcher.start({ threads, onEvent, http: httpOptionsFrom(flags) });
  const transport = traced(await connectNatsTransport(nats));
  const d = new TransportDispatcher(transport, {
    threads: threads ?? 1,
    natsUrl: redactUrls([nats.servers].flat().join(",")),
    onEvent,
    noWorkerTimeoutMs: flags.workerWaitTimeout ? parseIntFlag(flags.workerWaitTimeout, "--worker-wait-timeout") * 1000 : 0,
  });
  return Object.assign(d, { close: () => transport.close() });
}

/** Signals that stop a merge cleanly: the temporary output is removed and the exit status is 128 + the signal number. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export async function runWithDispatcher(cfg: Awaited<ReturnType<typeof loadConfig>>, flags: MergeFlags): Promise<void> {
  // `resolve("")` is the working directory: an empty -o must never reach the output code as ".".
  if (flags.output.trim() === "") throw new MergeloomError("USAGE", "--output: the output path is empty; pass a new directory with -o DIR");
  const http = httpOptionsFrom(flags);
  const renderer = createEventRenderer({ json: !!flags.json, quiet: !!flags.quiet });
  const dispatcher = await createDispatcher(flags, renderer.sink);
  const ac = new AbortController();
  let received: (typeof STOP_SIGNALS)[number] | undefined;
  let openOutput: OutputDir | undefined;
  const onSig = (sig: (typeof STOP_SIGNALS)[number]) => {
    if (received) {
      // A second signal while cleaning up: remove the temp dir now and go.
      openOutput?.abortSync();
      process.exit(128 + osConstants.signals[sig]);
    }
    received = sig;
    ac.abort();
  };
  const handlers = STOP_SIGNALS.map((sig) => [sig, () => onSig(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  const out = flags.output.startsWith("discard://") ? flags.output : resolve(flags.output);
  try {
    const seed = parseIntFlag(flags.randomSeed, "--random-seed");
    const numerics = parseNumerics(flags.numerics);
    const r = await runMergeJob(cfg, dispatcher, {
      numerics,
      copyTokenizer: flags.copyTokenizer !== false,
      writeModelCard: flags.writeModelCard !== false,
      allowCrimes: !!flags.allowCrimes,
      warnings: flags.optionWarnings,
      // Over NATS the job id is derived from config, seed and output, so rerunning the same
      // command after a coordinator crash resumes the job.
      jobId: dispatcher instanceof EmbeddedDispatcher ? undefined : deriveJobId(cfg, seed, out, numerics),
      out,
      seed,
      maxShardBytes: parseSize(flags.outShardSize, "--out-shard-size"),
      taskBytes: flags.taskSize ? parseSize(flags.taskSize, "--task-size") : undefined,
      output: parseOutputVia(flags.outputVia),
      overwrite: !!flags.overwrite,
      spaceCheck: flags.spaceCheck !== false,
      http,
      signal: ac.signal,
      onEvent: renderer.sink,
      onOutputDir: (d) => (openOutput = d),
    });
    if (received) throw interrupted(out, received);
    if (!flags.json) process.stdout.write(r.checksum ? `checksum ${r.checksum}\n` : `${r.out}\n`);
  } catch (err) {
    throw received ? interrupted(out, received, err) : err;
  } finally {
    renderer.stop();
    for (const [sig, h] of handlers) process.off(sig, h);
    await dispatcher.close();
  }
}

function parseNumerics(v: string | undefined): NumericsMode {
  if (v === undefined) return "default";
  if ((NUMERICS_MODES as readonly string[]).includes(v)) return v as NumericsMode;
  throw new MergeloomError("USAGE", `--numerics: '${v}' is not one of ${NUMERICS_MODES.join(", ")}`);
}

function interrupted(out: string, sig: (typeof STOP_SIGNALS)[number], cause?: unknown): MergeloomError {
  const e = new MergeloomError("CANCELLED", `merge ${out}: interrupted by ${sig}; the partial output was removed`, { cause });
  return Object.assign(e, { exitCode: 128 + osConstants.signals[sig] });
}

function parseOutputVia(v: string | undefined): "file" | "object" | undefined {
  if (v === undefined || v === "file") return undefined;
  if (v === "object") return "object";
  throw new MergeloomError("USAGE", `--output-via: '${v}' is not one of file, object`);
}
