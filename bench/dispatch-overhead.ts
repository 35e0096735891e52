/**
 * Dispatch overhead: tasks per second the coordinator pushes through the transport and collects
 * when the work itself is empty (no-op executor). End to end: TransportDispatcher.runTasks
 * publishes every task → a MergeWorker consumes it, checks the tasks/jobs buckets, records the
 * outcome in the tasks bucket and acks → the dispatcher's KV watch sees the outcome → onResult.
 *
 * Setups: the in-memory transport (embedded mode), NATS with the worker in the coordinator's
 * process (own connection), and NATS with 1 and 2 worker processes. Each setup runs a warm-up
 * job, then `--repeat` jobs of `--tasks` tasks, each job under a fresh prefix (fresh streams and
 * buckets). "publish" is the time until the last publishTask resolved.
 *
 *   node bench/dist/dispatch-overhead.js [--tasks 5000] [--repeat 3] [--concurrency 1]
 *        [--setups memory,nats-inproc,nats-1proc,nats-2proc]
 */
import { MemoryBroker, MemoryTransport } from "@mergeloom/transport";
import type { Transport } from "@mergeloom/transport";
import { TransportDispatcher } from "@mergeloom/coordinator/dispatch";
import { MergeWorker } from "@mergeloom/worker";
import { startNatsServer } from "@mergeloom/test/harness";
import { connectBenchTransport, machine, makeTinyTasks, NoopExecutor, parseFlag, startNoopWorkerProc, stats, type BenchProc } from "./nats-bench-harness.js";

interface JobTiming {
  tasksPerSec: number;
  publishPerSec: number;
}

/** Wraps a transport to time the publish phase. */
function timePublishes(t: Transport): { transport: Transport; lastPublish: () => number } {
  let last = 0;
  const transport = new Proxy(t, {
    get(target, prop, recv) {
      if (prop === "publishTask") {
        return async (...a: Parameters<Transport["publishTask"]>) => {
          await target.publishTask(...a);
          last = performance.now();
        };
      }
      const v = Reflect.get(target, prop, recv);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { transport, lastPublish: () => last };
}

async function runJob(coord: Transport, jobId: string, n: number): Promise<JobTiming> {
  const { transport, lastPublish } = timePublishes(coord);
  const opts = { threads: 1, noWorkerWarnMs: 60_000 };
  const d = new TransportDispatcher(transport, opts);
  const tasks = makeTinyTasks(jobId, n);
  let got = 0;
  const t0 = performance.now();
  await d.runTasks(tasks, () => got++);
  const secs = (performance.now() - t0) / 1000;
  if (got !== n) throw new Error(`bench: got ${got} results of ${n}`);
  return { tasksPerSec: n / secs, publishPerSec: n / ((lastPublish() - t0) / 1000) };
}

interface Setup {
  name: string;
  /** Coordinator transport for one job, workers started; returns a cleanup. */
  open(prefix: string): Promise<{ coord: Transport; close(): Promise<void> }>;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const n = Number(parseFlag(argv, "--tasks") ?? "5000");
  const repeat = Number(parseFlag(argv, "--repeat") ?? "3");
  const concurrency = Number(parseFlag(argv, "--concurrency") ?? "1");
  const Worker = MergeWorker;
  const wanted = (parseFlag(argv, "--setups") ?? "memory,nats-inproc,nats-1proc,nats-2proc").split(",");
  const server = await startNatsServer();
  const url = server.url;
  const procWorkers =
    (count: number): Setup["open"] =>
    async (prefix) => {
      const procs: BenchProc[] = [];
      for (let i = 0; i < count; i++) procs.push(await startNoopWorkerProc(url, prefix, `w${i}`, concurrency, []));
      const coord = await connectBenchTransport(url, prefix, "coordinator");
      return {
        coord,
        close: async () => {
          await coord.close();
          await Promise.all(procs.map((p) => p.stop()));
        },
      };
    };
  const all: Setup[] = [
    {
      name: "memory",
      open: async () => {
        const broker = new MemoryBroker();
        const wt = new MemoryTransport({ broker, role: "worker" });
        const worker = new Worker({ transport: wt, name: "w0", executor: new NoopExecutor(), concurrency, maxDeliver: 1 });
        await worker.start();
        return {
          coord: new MemoryTransport({ broker, role: "coordinator" }),
          close: async () => {
            await worker.stop({ graceful: false });
            await wt.close();
          },
        };
      },
    },
    {
      name: "nats-inproc",
      open: async (prefix) => {
        const wt = await connectBenchTransport(url, prefix, "worker");
        const worker = new Worker({ transport: wt, name: "w0", executor: new NoopExecutor(), concurrency, maxDeliver: 1 });
        await worker.start();
        const coord = await connectBenchTransport(url, prefix, "coordinator");
        return {
          coord,
          close: async () => {
            await coord.close();
            await worker.stop({ graceful: false });
            await wt.close();
          },
        };
      },
    },
    { name: "nats-1proc", open: procWorkers(1) },
    { name: "nats-2proc", open: procWorkers(2) },
  ];
  const setups = all.filter((s) => wanted.includes(s.name));

  const rows: string[] = [];
  console.log(`machine: ${machine()}; ${n} tasks per job, worker concurrency ${concurrency}, ${repeat} runs`);
  try {
    for (const s of setups) {
      const prefix = `bench_${s.name.replace(/-/g, "_")}_${Date.now().toString(36)}`;
      const env = await s.open(prefix);
      const runs: JobTiming[] = [];
      try {
        await runJob(env.coord, "warmup", Math.min(500, n));
        for (let r = 0; r < repeat; r++) {
          runs.push(await runJob(env.coord, `job${r}`, n));
          console.log(`${s.name} run ${r + 1}: ${runs[r].tasksPerSec.toFixed(0)} tasks/s (publish ${runs[r].publishPerSec.toFixed(0)}/s)`);
        }
      } finally {
        await env.close();
      }
      const e2e = stats(
        runs.map((r) => r.tasksPerSec),
        true,
      );
      const pub = stats(
        runs.map((r) => r.publishPerSec),
        true,
      );
      rows.push(`| ${s.name} | ${concurrency} | ${e2e.best.toFixed(0)} | ${e2e.median.toFixed(0)} | ${pub.median.toFixed(0)} |`);
    }
  } finally {
    await server.stop();
  }
  console.log("\n| setup | worker concurrency | tasks/s best | tasks/s median | publish/s median |\n|---|---|---|---|---|");
  for (const r of rows) console.log(r);
}

await main();
process.exit(0);
