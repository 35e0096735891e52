/**
 * Merge throughput: runs real merges of synthetic bf16 checkpoints through the CLI, as child
 * processes so their peak RSS (all piscina threads included: they share the process) is measured,
 * and reports input GB/s = bytes of all inputs read / seconds of the merge job, plus the CLI's
 * total wall time. A same-run baseline, a single-threaded plain TypeScript linear loop over the
 * same bytes (read, bf16→f32, weighted sum, f32→bf16, write), gives the ratios.
 *
 *   npm run bench -- [--size-gb 1[,0.5,2]] [--methods linear,ties,dare_ties,slerp]
 *                    [--repeat 3] [--threads N] [--keep]
 *
 * Inputs are read once first so every run reads from the page cache. Results: a markdown table on
 * stdout and .bench/results.json.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { join } from "node:path";
import { makeSyntheticCheckpoints, parseFlag, repoRoot, type SyntheticSet } from "./make-synthetic-checkpoints.js";

interface RunResult {
  mergeSeconds: number;
  cliSeconds: number;
  bytesRead: number;
  peakRssBytes: number;
}

interface MethodResult {
  method: string;
  sizeGb: number;
  inputs: number;
  inputBytes: number;
  runs: RunResult[];
  bestGBps: number;
  medianGBps: number;
  bestCliGBps: number;
  peakRssBytes: number;
  baselineGBps: number;
  ratioBest: number;
  ratioMedian: number;
}

const ROOT = repoRoot();
const CLI = join(ROOT, "bin", "mergeloom.js");
const READ_CHUNK = 8 << 20;

function configFor(method: string, set: SyntheticSet): { yaml: string; inputs: number } {
  const [m0, m1, m2] = set.paths;
  const q = JSON.stringify;
  switch (method) {
    case "linear":
      return {
        inputs: 3,
        yaml: `merge_method: linear\nmodels:\n  - model: ${q(m0)}\n    parameters: { weight: 0.5 }\n  - model: ${q(m1)}\n    parameters: { weight: 0.3 }\n  - model: ${q(m2)}\n    parameters: { weight: 0.2 }\ndtype: bfloat16\nout_dtype: bfloat16\n`,
      };
    case "ties":
    case "dare_ties":
      return {
        inputs: 3,
        yaml: `merge_method: ${method}\nbase_model: ${q(m0)}\nmodels:\n  - model: ${q(m1)}\n    parameters: { weight: 1.0, density: 0.5 }\n  - model: ${q(m2)}\n    parameters: { weight: 1.0, density: 0.5 }\ndtype: bfloat16\nout_dtype: bfloat16\n`,
      };
    case "slerp":
      return {
        inputs: 2,
        yaml: `merge_method: slerp\nbase_model: ${q(m0)}\nmodels:\n  - model: ${q(m0)}\n  - model: ${q(m1)}\nparameters: { t: 0.5 }\ndtype: bfloat16\nout_dtype: bfloat16\n`,
      };
    default:
      throw new Error(`bench: unknown method '${method}' (known: linear, ties, dare_ties, slerp)`);
  }
}

/** Reads the files end to end (fills the page cache) and returns the bytes read. */
function warm(paths: readonly string[]): number {
  const buf = new Uint8Array(READ_CHUNK);
  let total = 0;
  for (const p of paths) {
    const fd = openSync(p, "r");
    try {
      let n: number;
      while ((n = readSync(fd, buf, 0, buf.byteLength, null)) > 0) total += n;
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

/**
 * The reference point: one thread, plain loops. Streams the three files' tensor data in 8 MB
 * chunks, decodes bf16, sums with fp32 weights in float64, rounds to bf16 and writes the result.
 */
function baselineLinear(files: readonly string[], out: string): number {
  const weights = [0.5, 0.3, 0.2].map(Math.fround);
  const fds = files.map((f) => openSync(f, "r"));
  const ofd = openSync(out, "w");
  const t0 = performance.now();
  let read = 0;
  try {
    const hdr = new DataView(new Uint8Array(8).buffer);
    const start = fds.map((fd) => {
      readSync(fd, new Uint8Array(hdr.buffer), 0, 8, 0);
      return 8 + Number(hdr.getBigUint64(0, true));
    });
    const size = statSync(files[0]).size - start[0];
    const bufs = fds.map(() => new Uint8Array(READ_CHUNK));
    const f32s = fds.map(() => new Float32Array(READ_CHUNK / 2));
    const acc = new Float64Array(READ_CHUNK / 2);
    const res = new Float32Array(READ_CHUNK / 2);
    const o16 = new Uint16Array(READ_CHUNK / 2);
    for (let pos = 0; pos < size; pos += READ_CHUNK) {
      const len = Math.min(READ_CHUNK, size - pos);
      const n = len / 2;
      for (let m = 0; m < fds.length; m++) {
        read += readSync(fds[m], bufs[m], 0, len, start[m] + pos);
        const s16 = new Uint16Array(bufs[m].buffer, 0, n);
        const d32 = new Uint32Array(f32s[m].buffer, 0, n);
        for (let k = 0; k < n; k++) d32[k] = s16[k] << 16;
      }
      acc.fill(0, 0, n);
      for (let m = 0; m < fds.length; m++) {
        const x = f32s[m];
        const w = weights[m];
        for (let k = 0; k < n; k++) acc[k] += w * x[k];
      }
      for (let k = 0; k < n; k++) res[k] = acc[k];
      const r32 = new Uint32Array(res.buffer);
      for (let k = 0; k < n; k++) {
        const b = r32[k];
        o16[k] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      writeSync(ofd, new Uint8Array(o16.buffer, 0, len), 0, len, pos);
    }
  } finally {
    for (const fd of fds) closeSync(fd);
    closeSync(ofd);
  }
  const secs = (performance.now() - t0) / 1000;
  return read / 1e9 / secs;
}

/** Runs the CLI once; peak RSS from /usr/bin/time -v, else by polling VmHWM of the child. */
function runCli(cfg: string, out: string, threads: number | undefined): Promise<RunResult> {
  const args = [CLI, "merge", cfg, "-o", out, "--overwrite", "--json"];
  if (threads !== undefined) args.push("--threads", String(threads));
  const useTime = existsSync("/usr/bin/time");
  const cmd = useTime ? "/usr/bin/time" : process.execPath;
  const argv = useTime ? ["-v", process.execPath, ...args] : args;
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let hwm = 0;
    const poll = useTime
      ? undefined
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
            if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
          } catch {
            /* process gone */
          }
        }, 20);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      if (poll) clearInterval(poll);
      const cliSeconds = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`bench: merge ${cfg} exited with ${code}:\n${stderr.slice(-4000)}`));
      const done = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { type: string; seconds?: number; bytesRead?: number })
        .find((e) => e.type === "done");
      if (!done) return reject(new Error(`bench: no done event from ${cfg}`));
      if (useTime) {
        const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
        if (m) hwm = Number(m[1]) * 1024;
      }
      resolvePromise({ mergeSeconds: done.seconds!, cliSeconds, bytesRead: done.bytesRead!, peakRssBytes: hwm });
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const gb = (b: number) => (b / 1e9).toFixed(2);
const mb = (b: number) => (b / 2 ** 20).toFixed(0);

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const sizes = (parseFlag(argv, "--size-gb") ?? "1").split(",").map(Number);
  const methods = (parseFlag(argv, "--methods") ?? "linear,ties,dare_ties,slerp").split(",");
  const repeat = Number(parseFlag(argv, "--repeat") ?? "3");
  const threadsFlag = parseFlag(argv, "--threads");
  const threads = threadsFlag === undefined ? undefined : Number(threadsFlag);
  const keep = argv.includes("--keep");
  const benchDir = join(ROOT, ".bench");
  mkdirSync(benchDir, { recursive: true });
  const results: MethodResult[] = [];

  for (const sizeGb of sizes) {
    const t0 = performance.now();
    const set = makeSyntheticCheckpoints({ sizeGb, models: 3, dir: benchDir });
    console.error(
      `# ${set.created ? "generated" : "reusing"} 3 × ${gb(set.bytesPerModel)} GB (${set.numLayers} layers) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const files = set.paths.map((p) => join(p, "model.safetensors"));
    warm(files);
    const outDir = join(benchDir, "out");
    const baselines: number[] = [];
    for (let i = 0; i < repeat; i++) baselines.push(baselineLinear(files, join(benchDir, "baseline.bin")));
    rmSync(join(benchDir, "baseline.bin"), { force: true });
    const baseline = Math.max(...baselines);
    console.error(`# baseline single-threaded TS linear: ${baselines.map((b) => b.toFixed(2)).join(", ")} GB/s`);
    for (const method of methods) {
      const { yaml, inputs } = configFor(method, set);
      const cfg = join(benchDir, `bench-${method}.yml`);
      writeFileSync(cfg, yaml);
      warm(files.slice(0, inputs));
      const runs: RunResult[] = [];
      for (let i = 0; i < repeat; i++) {
        const r = await runCli(cfg, outDir, threads);
        runs.push(r);
        console.error(
          `#   ${method} run ${i + 1}: ${(r.bytesRead / 1e9 / r.mergeSeconds).toFixed(2)} GB/s, merge ${r.mergeSeconds.toFixed(2)} s, cli ${r.cliSeconds.toFixed(2)} s, peak RSS ${mb(r.peakRssBytes)} MiB`,
        );
      }
      const rates = runs.map((r) => r.bytesRead / 1e9 / r.mergeSeconds);
      const best = Math.max(...rates);
      const med = median(rates);
      results.push({
        method,
        sizeGb,
        inputs,
        inputBytes: runs[0].bytesRead,
        runs,
        bestGBps: best,
        medianGBps: med,
        bestCliGBps: Math.max(...runs.map((r) => r.bytesRead / 1e9 / r.cliSeconds)),
        peakRssBytes: Math.max(...runs.map((r) => r.peakRssBytes)),
        baselineGBps: baseline,
        ratioBest: best / baseline,
        ratioMedian: med / baseline,
      });
    }
    rmSync(outDir, { recursive: true, force: true });
    if (!keep) rmSync(set.dir, { recursive: true, force: true });
  }

  const machine = {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    threads: threads ?? "default (all cores)",
  };
  const lines = [
    `machine: ${machine.nproc} cores, ${machine.cpu}, ${machine.memGiB} GiB, node ${machine.node}; merge threads: ${machine.threads}; ${repeat} runs each`,
    "",
    "| method | inputs | input GB | input GB/s best | median | CLI wall GB/s best | peak RSS MiB | baseline GB/s | ratio best | ratio median |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...results.map(
      (r) =>
        `| ${r.method} | ${r.inputs} | ${gb(r.inputBytes)} | ${r.bestGBps.toFixed(2)} | ${r.medianGBps.toFixed(2)} | ${r.bestCliGBps.toFixed(2)} | ${mb(r.peakRssBytes)} | ${r.baselineGBps.toFixed(2)} | ${r.ratioBest.toFixed(2)}× | ${r.ratioMedian.toFixed(2)}× |`,
    ),
  ];
  console.log(lines.join("\n"));
  writeFileSync(join(benchDir, "results.json"), JSON.stringify({ machine, command: process.argv.slice(1).join(" "), results }, null, 2) + "\n");
}

await main();
