/**
 * 70B rehearsal without 420 GB of disk: three synthetic Llama-3-70B checkpoints
 * (`synthetic://llama-70b?seed=N`, bytes generated on the fly) merged with TIES across worker
 * processes over a real nats-server, output checksummed by `-o discard://`. Reports per-worker
 * peak RSS (VmHWM), total time and coordinator CPU per task.
 *
 *   npm run build && node bench/dist/rehearsal-70b.js [--layers 80] [--workers 2] [--threads 1]
 */
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startNatsServer } from "@mergeloom/test/harness";
import { Proc, startWorker, uniquePrefix } from "@mergeloom/test/harness";
import { REPO_ROOT } from "@mergeloom/test/harness";

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

/** Peak resident set (VmHWM) and CPU seconds of a live process, from /proc. */
function procStats(pid: number): { hwmBytes: number; cpuSeconds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime
    return { hwmBytes: hwm, cpuSeconds: ticks / 100 };
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const layers = Number(flag("layers", "80"));
  const workers = Number(flag("workers", "2"));
  const threads = Number(flag("threads", "1"));
  const m = (seed: number) => `synthetic://llama-70b?seed=${seed}&layers=${layers}`;
  const cfg = join(tmpdir(), `rehearsal-70b-${layers}.yml`);
  writeFileSync(
    cfg,
    [
      "merge_method: ties",
      `base_model: ${m(0)}`,
      "models:",
      `  - model: ${m(1)}`,
      "    parameters: { weight: 1.0, density: 0.5 }",
      `  - model: ${m(2)}`,
      "    parameters: { weight: 1.0, density: 0.5 }",
      "dtype: float32",
      "out_dtype: bfloat16",
      "",
    ].join("\n"),
  );
  const server = await startNatsServer({ jetstream: true });
  const prefix = uniquePrefix();
  const ws = Array.from({ length: workers }, (_, i) => startWorker(server.url, { name: `rehearsal-w${i + 1}`, prefix, threads, ackWaitS: 120 }));
  await Promise.all(ws.map((w) => w.waitFor((s) => s.includes("ready"), 30_000, "worker ready")));
  const started = performance.now();
  const coord = new Proc(["merge", cfg, "-o", "discard://", "--nats", server.url, "--nats-prefix", prefix, "--json"]);
  const peak = new Map<number, number>();
  mkdirSync(join(REPO_ROOT, ".bench"), { recursive: true });
  const progressFile = join(REPO_ROOT, ".bench", `rehearsal-70b-${layers}.progress.json`);
  let coordCpu = 0;
  const poll = setInterval(() => {
    for (const w of ws) {
      const s = procStats(w.child.pid!);
      if (s) peak.set(w.child.pid!, Math.max(peak.get(w.child.pid!) ?? 0, s.hwmBytes));
    }
    const c = procStats(coord.child.pid!);
    if (c) coordCpu = c.cpuSeconds;
    // Progress on disk, so a run cut short still says how far it got and how fast.
    writeFileSync(
      progressFile,
      JSON.stringify({
        seconds: (performance.now() - started) / 1000,
        peakRssMiB: [...peak.values()].map((b) => Math.round(b / 2 ** 20)),
        coordCpu,
        events: coord.events().filter((e) => e.type !== "warning"),
      }) + "\n",
    );
  }, 2000);
  const code = await coord.exited;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(poll);
  for (const w of ws) {
    const s = procStats(w.child.pid!);
    if (s) peak.set(w.child.pid!, Math.max(peak.get(w.child.pid!) ?? 0, s.hwmBytes));
  }
  await Promise.all(ws.map((w) => w.kill("SIGTERM")));
  await server.stop();
  if (code !== 0) throw new Error(`coordinator failed:\n${coord.err}`);
  const events = coord.events();
  const plan = events.find((e) => e.type === "plan") as { tasks: number; bytesToRead: number; bytesToWrite: number };
  const done = events.find((e) => e.type === "done") as { checksum: string };
  const tasksPerWorker = new Map<string, number>();
  for (const e of events) if (e.type === "task") tasksPerWorker.set(String(e.worker), (tasksPerWorker.get(String(e.worker)) ?? 0) + 1);
  const result = {
    machine: {
      cpus: readFileSync("/proc/cpuinfo", "utf8").match(/^processor/gm)?.length,
      model: /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1],
    },
    layers,
    workers,
    threadsPerWorker: threads,
    tasks: plan.tasks,
    inputGB: plan.bytesToRead / 1e9,
    outputGB: plan.bytesToWrite / 1e9,
    seconds,
    inputGBps: plan.bytesToRead / 1e9 / seconds,
    workerPeakRssMiB: [...peak.values()].map((b) => Math.round(b / 2 ** 20)),
    tasksPerWorker: Object.fromEntries(tasksPerWorker),
    coordinatorCpuSeconds: coordCpu,
    coordinatorCpuMsPerTask: (coordCpu * 1000) / plan.tasks,
    checksum: done.checksum,
  };
  mkdirSync(join(REPO_ROOT, ".bench"), { recursive: true });
  writeFileSync(join(REPO_ROOT, ".bench", `rehearsal-70b-${layers}.json`), JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
}

await main();
