/** `mergeloom worker`, `mergeloom jobs` and `mergeloom cancel`. */
import { availableParallelism } from "node:os";
import type { Command } from "commander";
import { errorMessage, MergeloomError, ProtocolError } from "@mergeloom/proto/errors";
import { traced } from "@mergeloom/transport";
import { connectNatsTransport, type NatsConnectOptions } from "@mergeloom/transport";
import type { JobRecord, WorkerRecord } from "@mergeloom/proto/records";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import type { KvBucket } from "@mergeloom/transport";
import { startHealthServer } from "@mergeloom/worker";
import { WorkerMetrics } from "@mergeloom/worker";
import { EvalWorker } from "@mergeloom/worker";
import { MergeWorker } from "@mergeloom/worker";
import { addNatsOptions, natsOptionsFrom, type NatsFlags } from "./nats-options.js";
import { redactUrls } from "@mergeloom/transport";
import { parseIntFlag, parseSize } from "./parse-size.js";
import { resolve } from "node:path";
import { addHttpOptions, httpOptionsFrom, type HttpFlags } from "./http-options.js";
import { addScorerOptions, gpuFrom, scorersFrom, type ScorerFlags } from "./scorer-options.js";
import { ScratchDir } from "@mergeloom/worker";
import { join } from "node:path";
import { tmpdir } from "node:os";

function requireNats(flags: NatsFlags, role: "coordinator" | "worker", name?: string): NatsConnectOptions {
  const o = natsOptionsFrom(flags, process.env, role, name);
  if (!o) throw new MergeloomError("USAGE", "--nats: a NATS server URL is required (or set MERGELOOM_NATS_URL)");
  return o;
}

export function registerClusterCommands(program: Command): void {
  const worker = program
    .command("worker")
    .description("run a worker: take merge tasks and evolve candidate evaluations from NATS JetStream until stopped (SIGTERM drains gracefully)")
    .option("--concurrency <n>", "tasks processed at once (2 keeps the merge threads busy across task boundaries)", "2")
    .option("--threads <n>", "merge threads (default: all cores)")
    .option("--name <id>", "worker name shown in `mergeloom jobs` and traces (default: host-pid)")
    .option("--storage-root <dir...>", "directories tasks may read and write (repeatable; default: the current directory); paths outside are refused")
    .option("--http-port <port>", "serve /healthz, /readyz and /metrics on this port (default: not served, so several workers share a host; 0 = off)")
    .option("--ack-wait <seconds>", "seconds a task may go without a heartbeat before it is redelivered", "30")
    .option("--max-deliver <n>", "attempts per task before it fails the job", "5")
    .option("--drain-timeout <seconds>", "on SIGTERM, how long in-flight tasks may finish before being handed back", "25")
    .option("--eval-concurrency <n>", "evolve candidate evaluations processed at once (0 = take no evaluation tasks)", "1")
    .option("--eval-device <device>", "ONNX execution provider for evaluations: cpu, cuda or auto (CUDA when it loads, else CPU)", "auto")
    .option("--scratch-dir <dir>", "local directory for candidate checkpoints that scorers read (default: $TMPDIR/mergeloom-scratch-<name>)")
    .option("--scratch-max-bytes <size>", "most bytes of candidate checkpoints held in scratch at once (e.g. 200GB)", "100GB")
    .option(
      "--cache-dir <dir>",
      "keep tensor byte ranges read from the Hub in DIR, so re-reads (streaming passes, evolve candidates) skip the network (default: <tmp>/mergeloom-hub-ranges)",
    )
    .option("--cache-size <bytes>", "size limit of the range cache; least recently used ranges are deleted (0 = no cache)", "8GB");
  addScorerOptions(worker);
  addHttpOptions(worker);
  addNatsOptions(worker, { required: true }).action(
    async (
      flags: NatsFlags &
        HttpFlags &
        ScorerFlags & {
          concurrency: string;
          threads?: string;
          name?: string;
          storageRoot?: string[];
          cacheDir?: string;
          cacheSize: string;
          httpPort?: string;
          ackWait: string;
          maxDeliver: string;
          drainTimeout: string;
          evalConcurrency: string;
          evalDevice: string;
          scratchDir?: string;
          scratchMaxBytes: string;
        },
    ) => {
      const evalConcurrency = parseIntFlag(flags.evalConcurrency, "--eval-concurrency", 0);
      const evalDevice = flags.evalDevice;
      if (evalDevice !== "cpu" && evalDevice !== "cuda" && evalDevice !== "auto")
        throw new MergeloomError("USAGE", `--eval-device: '${evalDevice}' is not one of cpu, cuda, auto`);
      const name = flags.name ?? process.env.MERGELOOM_WORKER_NAME;
      const scorers = await scorersFrom(flags);
      if (scorers.size && !evalConcurrency)
        throw new MergeloomError("USAGE", "--scorer: a worker with scorers must take evaluation tasks; set --eval-concurrency 1 or more");
      const scratchMax = parseSize(flags.scratchMaxBytes, "--scratch-max-bytes");
      // Merge threads read the Hub settings from their (inherited) environment: set it before they start.
      if (flags.cacheDir) {
        process.env.MERGELOOM_RANGE_CACHE_DIR = resolve(flags.cacheDir);
        process.env.MERGELOOM_RANGE_CACHE_ALL = "1"; // a cache the user asked for keeps every range (evolve re-reads)
      }
      process.env.MERGELOOM_RANGE_CACHE_SIZE = String(parseSize(flags.cacheSize, "--cache-size"));
      const nats = requireNats(flags, "worker", name);
      const transport = traced(await connectNatsTransport(nats));
      const metrics = new WorkerMetrics();
      const taskDelayMs = process.env.MERGELOOM_FAULT_TASK_DELAY_MS ? Number(process.env.MERGELOOM_FAULT_TASK_DELAY_MS) : undefined;
      const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${redactUrls(l)}\n`);
      // Tasks come from the network: without --storage-root they may touch only the working directory.
      const storageRoots = flags.storageRoot?.length ? flags.storageRoot : [process.cwd()];
      const w = new MergeWorker({
        transport,
        name,
        concurrency: parseIntFlag(flags.concurrency, "--concurrency", 1),
        threads: flags.threads === undefined ? availableParallelism() : parseIntFlag(flags.threads, "--threads"),
        storageRoots,
        http: httpOptionsFrom(flags),
        ackWaitMs: parseIntFlag(flags.ackWait, "--ack-wait", 1) * 1000,
        maxDeliver: parseIntFlag(flags.maxDeliver, "--max-deliver", 1),
        metrics,
        taskDelayMs,
        log,
      });
      const ev = evalConcurrency
        ? new EvalWorker({
            transport,
            name: w.name,
            concurrency: evalConcurrency,
            device: evalDevice,
            storageRoots,
            ackWaitMs: parseIntFlag(flags.ackWait, "--ack-wait", 1) * 1000,
            maxDeliver: parseIntFlag(flags.maxDeliver, "--max-deliver", 1),
            taskDelayMs,
            log,
            scorers,
            scratch: scorers.size
              ? new ScratchDir(flags.scratchDir ?? join(tmpdir(), `mergeloom-scratch-${w.name.replace(/[^A-Za-z0-9_.-]/g, "_")}`), scratchMax)
              : undefined,
            gpu: gpuFrom(flags, process.env),
          })
        : undefined;
      // Health is served only when asked for: one host runs a worker per GPU, and a fixed default
      // port would make every worker after the first fail with EADDRINUSE.
      const port = flags.httpPort === undefined ? 0 : parseIntFlag(flags.httpPort, "--http-port");
      const health = port ? await startHealthServer({ port, metrics, ready: () => w.ready && (ev?.ready ?? true) }) : undefined;
      log(`storage roots: ${storageRoots.join(", ")}${health ? `; /healthz, /readyz, /metrics on port ${health.port}` : ""}`);
      await w.start();
      await ev?.start();
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (sig: string) => {
          if (stopping) return;
          stopping = true;
          process.stderr.write(`${new Date().toISOString()} ${sig}: draining (in-flight tasks finish or are handed back)\n`);
          const timeoutMs = parseIntFlag(flags.drainTimeout, "--drain-timeout") * 1000;
          void Promise.allSettled([w.stop({ graceful: true, timeoutMs }), ev?.stop({ graceful: true, timeoutMs })]).finally(async () => {
            await health?.close();
            await transport.close();
            resolve();
          });
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
      });
    },
  );

  const jobs = program.command("jobs").description("list merge jobs and connected workers").option("--json", "print JSON");
  addNatsOptions(jobs, { required: true }).action(async (flags: NatsFlags & { json?: boolean }) => {
    const transport = await connectNatsTransport(requireNats(flags, "coordinator"));
    try {
      const jobsKv = await openKv(transport, buckets.jobs);
      const workersKv = await openKv(transport, buckets.workers);
      // One undecodable record (a foreign writer, a different version) is reported on its own
      // line, never allowed to hide every other job.
      const skipped: Array<{ bucket: string; key: string; error: string }> = [];
      const readAll = async <T>(kv: KvBucket<T>): Promise<T[]> => {
        const out: T[] = [];
        for (const k of await kv.keys()) {
          try {
            const e = await kv.get(k);
            if (e) out.push(e.value);
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
            skipped.push({ bucket: kv.name, key: k, error: errorMessage(err) });
          }
        }
        return out;
      };
      const list: JobRecord[] = await readAll(jobsKv);
      const ws: WorkerRecord[] = await readAll(workersKv);
      list.sort((a, b) => b.updatedAt - a.updatedAt);
      if (flags.json) {
        process.stdout.write(JSON.stringify({ jobs: list, workers: ws, skipped }) + "\n");
        return;
      }
      const w = (s: string) => process.stdout.write(s + "\n");
      w(`${"JOB".padEnd(18)} ${"STATE".padEnd(11)} ${"TASKS".padEnd(11)} ${"UPDATED".padEnd(20)} OUTPUT`);
      for (const j of list) {
        w(
          `${j.jobId.padEnd(18)} ${j.state.padEnd(11)} ${`${j.doneTasks}/${j.totalTasks}`.padEnd(11)} ${new Date(j.updatedAt).toISOString().slice(0, 19).padEnd(20)} ${j.meta?.out ?? j.outputDir}${j.error ? `  (${j.error.message})` : ""}`,
        );
      }
      for (const x of skipped) if (x.bucket === buckets.jobs.name) w(`${x.key.padEnd(18)} ${"unreadable".padEnd(11)} skipped: ${x.error}`);
      w(`\n${ws.length} worker(s) connected`);
      for (const x of ws)
        w(
          `  ${x.name.padEnd(24)} ${x.status.padEnd(9)} tasks ${x.activeTasks}/${x.concurrency}  threads ${x.threads}  v${x.version}${x.gpu ? `  ${x.gpu}` : ""}`,
        );
      for (const x of skipped) if (x.bucket !== buckets.jobs.name) w(`  ${x.key.padEnd(24)} unreadable, skipped: ${x.error}`);
    } finally {
      await transport.close();
    }
  });

  const cancel = program.command("cancel").description("cancel a running merge job").argument("<job>", "job id (see `mergeloom jobs`)");
  addNatsOptions(cancel, { required: true }).action(async (jobId: string, flags: NatsFlags) => {
    const transport = await connectNatsTransport(requireNats(flags, "coordinator"));
    try {
      const kv = await openKv(transport, buckets.jobs);
      const e = await kv.get(jobId);
      if (!e) throw new MergeloomError("USAGE", `cancel ${jobId}: no such job (see mergeloom jobs)`);
      if (["done", "failed", "cancelled"].includes(e.value.state)) {
        process.stdout.write(`job ${jobId} is already ${e.value.state}\n`);
        return;
      }
      await kv.update(jobId, { ...e.value, state: "cancelled", updatedAt: Date.now() }, e.revision);
      process.stdout.write(`job ${jobId} cancelled\n`);
    } finally {
      await transport.close();
    }
  });
}
