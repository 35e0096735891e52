/** `mergeloom merge`, `mergeloom plan` and `mergeloom vector extract`. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { DTYPE_BYTES } from "../../proto/dtype.js";
import { EmbeddedDispatcher } from "../dispatch/embedded-dispatcher.js";
import { TransportDispatcher } from "../dispatch/transport-dispatcher.js";
import { traced } from "../../proto/tracing/traced-transport.js";
import { connectNatsTransport } from "../../proto/nats-transport.js";
import { addNatsOptions, natsOptionsFrom, type NatsFlags } from "./nats-options.js";
import { deriveJobId, loadConfig, planMerge, runMergeJob, type TaskDispatcher } from "../merge/run-merge-job.js";
import { buildTasks } from "../plan/build-tasks.js";
import { estimatePeakMemory } from "../plan/estimate-memory.js";
import { createEventRenderer, formatBytes } from "./render-events.js";
import type { MergeEventSink } from "../merge/merge-events.js";
import { parseIntFlag, parseSize } from "./parse-size.js";
import { parseMergeConfig } from "../config/parse-merge-config.js";
import { createDefaultRegistry } from "../../worker/merge/all-methods.js";
import { parseConfigDType, CONFIG_DTYPE_NAMES } from "../../proto/dtype.js";
import { MergeloomError } from "../../proto/errors.js";
import { setMaxListeners } from "node:events";
import { downloadConfig } from "./download-command.js";

export const DEFAULT_SHARD_BYTES = 5_000_000_000;

interface MergeFlags extends NatsFlags {
  outputVia?: string;
  workerWaitTimeout?: string;
  output: string;
  outShardSize: string;
  randomSeed: string;
  threads?: string;
  json?: boolean;
  overwrite?: boolean;
  taskSize?: string;
  download?: boolean;
}

export function registerMergeCommands(program: Command): void {
  const merge = program
    .command("merge")
    .description("merge the models of a mergekit YAML config into OUT (an HF model directory)")
    .argument("<config>", "mergekit YAML config")
    .requiredOption("-o, --output <dir>", "output model directory (written atomically)")
    .option("--out-shard-size <bytes>", "maximum bytes of tensor data per output shard (5000000000, 5GB, 500MB)", "5GB")
    .option("--random-seed <n>", "seed for DARE/DELLA masks; each tensor derives its stream from (seed, name)", "0")
    .option("--threads <n>", "merge threads (default: all cores; 0 = the main thread only)")
    .option("--task-size <bytes>", "output bytes per task (layers are never split; default: one layer per task)")
    .option("--overwrite", "replace OUT if it exists")
    .option("--json", "print one JSON object per event instead of a progress bar")
    .option("--output-via <mode>", "with --nats: how workers deliver tensors: 'file' (a volume shared with the coordinator) or 'object' (the NATS object store)", "file")
    .option("--worker-wait-timeout <seconds>", "with --nats: fail when no worker connects within this time (default: keep waiting, with warnings)")
    .option("--download", "first download the config's Hub models into the Hugging Face cache (as `mergeloom download`)");
  addNatsOptions(merge).action(async (config: string, flags: MergeFlags) => {
    const cfg = await loadConfig(config);
    if (flags.download) await downloadConfig(cfg, { json: flags.json });
    await runWithDispatcher(cfg, flags);
  });

  program
    .command("plan")
    .description("validate a config and print the merge plan, reading only checkpoint headers")
    .argument("<config>", "mergekit YAML config")
    .option("--out-shard-size <bytes>", "maximum bytes per output shard", "5GB")
    .option("--threads <n>", "threads to size the memory estimate for")
    .option("--json", "print the plan as JSON")
    .option("-v, --verbose", "list every output tensor")
    .option("--download", "first download the config's Hub models into the Hugging Face cache")
    .action(async (config: string, flags: { outShardSize: string; threads?: string; json?: boolean; verbose?: boolean; download?: boolean }) => {
      const cfg = await loadConfig(config);
      if (flags.download) await downloadConfig(cfg, { json: flags.json });
      const plan = await planMerge(cfg);
      const threads = flags.threads === undefined ? (await import("node:os")).availableParallelism() : parseIntFlag(flags.threads, "--threads");
      const { shards, tasks } = buildTasks(plan, { jobId: "plan", seed: 0, maxShardBytes: parseSize(flags.outShardSize, "--out-shard-size"), outDir: "discard://" });
      const peak = estimatePeakMemory(plan, threads);
      const tensors = plan.tensors.map((t) => ({
        name: t.name,
        shape: t.shape,
        dtype: t.outDtype,
        bytes: t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.outDtype],
        inputs: t.inputs.map((i) => ({ model: i.model, tensor: i.source.tensor, ...i.params })),
        params: t.params,
      }));
      if (flags.json) {
        process.stdout.write(
          JSON.stringify(
            { method: plan.method.name, pins: plan.pins, numLayers: plan.numLayers, outDtype: plan.outDtype, tensors, shards: shards.map((s) => ({ file: s.file, tensors: s.entries.length, bytes: s.fileBytes })), tasks: tasks.length, bytesToRead: plan.bytesToRead, bytesToWrite: plan.bytesToWrite, peakMemoryBytes: peak },
            null,
            2,
          ) + "\n",
        );
        return;
      }
      const w = (s: string) => process.stdout.write(s + "\n");
      w(`method: ${plan.method.name}   output layers: ${plan.numLayers}   output dtype: ${plan.outDtype}`);
      w(`models: ${[...plan.checkpoints.keys()].map((r) => (plan.pins[r] ? `${r} (${plan.pins[r]})` : r)).join(", ")}`);
      w(`tensors: ${plan.tensors.length} in ${tasks.length} tasks → ${shards.length} shard(s)`);
      w(`read: ${formatBytes(plan.bytesToRead)}   write: ${formatBytes(plan.bytesToWrite)}   estimated peak memory (${threads} threads): ${formatBytes(peak)}`);
      if (flags.verbose) for (const t of tensors) w(`  ${t.name} [${t.shape.join(", ")}] ${t.dtype} ← ${t.inputs.map((i) => `${i.model}${Object.keys(i).length > 2 ? " " + JSON.stringify(Object.fromEntries(Object.entries(i).filter(([k]) => k !== "model" && k !== "tensor"))) : ""}`).join(", ")}`);
    });

  const vector = program.command("vector").description("task vectors as artifacts");
  vector
    .command("extract")
    .description("write the task vector A − B as a safetensors checkpoint (add it to a model with `vectors:` in a config)")
    .argument("<a>", "fine-tuned model (e.g. the GRPO model)")
    .requiredOption("--minus <b>", "model to subtract (e.g. the SFT model it was trained from)")
    .requiredOption("-o, --output <dir>", "output directory")
    .option("--dtype <name>", `dtype of the vector (${CONFIG_DTYPE_NAMES.join(", ")})`, "float32")
    .option("--out-shard-size <bytes>", "maximum bytes per output shard", "5GB")
    .option("--threads <n>", "merge threads")
    .option("--overwrite", "replace the output if it exists")
    .option("--json", "JSON events")
    .action(async (a: string, flags: MergeFlags & { minus: string; dtype: string }) => {
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

async function createDispatcher(flags: MergeFlags, onEvent: MergeEventSink): Promise<TaskDispatcher & { close(): Promise<void> }> {
  const threads = flags.threads === undefined ? undefined : parseIntFlag(flags.threads, "--threads");
  const nats = natsOptionsFrom(flags, process.env, "coordinator", "mergeloom-coordinator");
  if (!nats) return EmbeddedDispatcher.start({ threads, onEvent });
  const transport = traced(await connectNatsTransport(nats));
  const d = new TransportDispatcher(transport, {
    threads: threads ?? 1,
    natsUrl: [nats.servers].flat().join(","),
    onEvent,
    noWorkerTimeoutMs: flags.workerWaitTimeout ? parseIntFlag(flags.workerWaitTimeout, "--worker-wait-timeout") * 1000 : 0,
  });
  return Object.assign(d, { close: () => transport.close() });
}

export async function runWithDispatcher(cfg: Awaited<ReturnType<typeof loadConfig>>, flags: MergeFlags): Promise<void> {
  const renderer = createEventRenderer({ json: !!flags.json });
  const dispatcher = await createDispatcher(flags, renderer.sink);
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // every in-flight tensor job listens for cancellation
  const onSig = () => ac.abort();
  process.once("SIGINT", onSig);
  try {
    const out = flags.output.startsWith("discard://") ? flags.output : resolve(flags.output);
    const seed = parseIntFlag(flags.randomSeed, "--random-seed");
    const r = await runMergeJob(cfg, dispatcher, {
      // Over NATS the job id is derived from config, seed and output, so rerunning the same
      // command after a coordinator crash resumes the job.
      jobId: dispatcher instanceof EmbeddedDispatcher ? undefined : deriveJobId(cfg, seed, out),
      out,
      seed,
      maxShardBytes: parseSize(flags.outShardSize, "--out-shard-size"),
      taskBytes: flags.taskSize ? parseSize(flags.taskSize, "--task-size") : undefined,
      output: parseOutputVia(flags.outputVia),
      overwrite: !!flags.overwrite,
      signal: ac.signal,
      onEvent: renderer.sink,
    });
    if (!flags.json) process.stdout.write(r.checksum ? `checksum ${r.checksum}\n` : `${r.out}\n`);
  } finally {
    renderer.stop();
    process.off("SIGINT", onSig);
    await dispatcher.close();
  }
}

function parseOutputVia(v: string | undefined): "file" | "object" | undefined {
  if (v === undefined || v === "file") return undefined;
  if (v === "object") return "object";
  throw new MergeloomError("USAGE", `--output-via: '${v}' is not one of file, object`);
}
