/**
 * Worker scaling: a real TIES merge (density 0.5) of synthetic bf16 Llama-shaped checkpoints
 * (base + 3 models, ~400 MB each) through the CLI over NATS with 1 vs 2 worker processes
 * (`mergeloom worker --threads 1` each), plus the embedded single-process mode with --threads 1
 * and 2 as a reference. Speedup = best (and median) wall time with 1 worker / with 2 workers.
 *
 * Each run uses a fresh NATS prefix (fresh streams and buckets, so the job never resumes an
 * earlier run) with its workers started and ready before the clock starts; the clock covers the
 * whole `mergeloom merge` process. Inputs are read once first, so every run reads from the page
 * cache. The checkpoints are generated deterministically (bench/make-synthetic-checkpoints.ts)
 * and removed at the end unless --keep.
 *
 *   node bench/dist/worker-scaling.js [--repeat 3] [--size-gb 0.4] [--keep]
 *        [--modes embedded-1,embedded-2,nats-1w,nats-2w]
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startNatsServer } from "@mergeloom/test/harness";
import { makeSyntheticCheckpoints } from "./make-synthetic-checkpoints.js";
import { BenchProc, CLI, machine, parseFlag, ROOT, stats } from "./nats-bench-harness.js";

/** Reads every file end to end so the runs read from the page cache. */
function warm(files: readonly string[]): void {
  const buf = new Uint8Array(8 << 20);
  for (const f of files) {
    const fd = openSync(f, "r");
    try {
      while (readSync(fd, buf, 0, buf.byteLength, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}

/** Runs `mergeloom merge` to completion; resolves with its wall seconds and the job's own seconds. */
function runMerge(args: string[]): Promise<{ wall: number; job: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, "merge", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => {
      const wall = (performance.now() - t0) / 1000;
      const done = out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { type: string; seconds?: number })
        .find((e) => e.type === "done");
      if (code !== 0 || !done) reject(new Error(`bench: merge exited with ${code}:\n${out.slice(-3000)}`));
      else resolve({ wall, job: done.seconds ?? wall });
    });
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const repeat = Number(parseFlag(argv, "--repeat") ?? "3");
  const sizeGb = Number(parseFlag(argv, "--size-gb") ?? "0.4");
  const modes = (parseFlag(argv, "--modes") ?? "embedded-1,embedded-2,nats-1w,nats-2w").split(",");
  const keep = argv.includes("--keep");
  const benchDir = join(ROOT, ".bench");

  // hidden 1024 and vocab 16000 keep embed_tokens/lm_head (one task each, never split) about 1.5
  // layers big, so the last task does not leave one worker idle for long.
  const t0 = performance.now();
  const set = makeSyntheticCheckpoints({ sizeGb, models: 4, dir: benchDir, hidden: 1024, intermediate: 2816, vocab: 16000, heads: 16, kvHeads: 4 });
  console.log(`machine: ${machine()}`);
  console.log(
    `${set.created ? "generated" : "reused"} base + 3 models of ${(set.bytesPerModel / 1e9).toFixed(2)} GB (${set.numLayers} layers) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const [base, ...models] = set.paths;
  const q = JSON.stringify;
  const cfg = join(set.dir, "ties.yml");
  writeFileSync(
    cfg,
    `merge_method: ties\nbase_model: ${q(base)}\nmodels:\n${models.map((m) => `  - model: ${q(m)}\n    parameters: { weight: 1.0, density: 0.5 }\n`).join("")}parameters: { normalize: true }\ndtype: bfloat16\nout_dtype: bfloat16\n`,
  );
  const out = join(set.dir, "out");
  warm(set.paths.map((p) => join(p, "model.safetensors")));

  const server = await startNatsServer();
  const results: Array<{ mode: string; walls: number[]; jobs: number[] }> = [];
  let runNo = 0;
  try {
    for (const mode of modes) {
      const walls: number[] = [];
      const jobs: number[] = [];
      for (let r = 0; r < repeat; r++) {
        rmSync(out, { recursive: true, force: true });
        const workers: BenchProc[] = [];
        let args: string[];
        const m = /^(embedded|nats)-(\d+)w?$/.exec(mode);
        if (!m) throw new Error(`bench: unknown mode '${mode}' (known: embedded-1, embedded-2, nats-1w, nats-2w)`);
        if (m[1] === "embedded") {
          args = [cfg, "-o", out, "--threads", m[2], "--json"];
        } else {
          const prefix = `scale_${process.pid}_${runNo++}`;
          for (let i = 0; i < Number(m[2]); i++) {
            const w = new BenchProc(CLI, ["worker", "--nats", server.url, "--nats-prefix", prefix, "--threads", "1", "--name", `w${i}`, "--http-port", "0"]);
            workers.push(w);
          }
          await Promise.all(workers.map((w) => w.waitFor(/ready/)));
          args = [cfg, "-o", out, "--nats", server.url, "--nats-prefix", prefix, "--json"];
        }
        try {
          const t = await runMerge(args);
          walls.push(t.wall);
          jobs.push(t.job);
          console.log(`${mode} run ${r + 1}: wall ${t.wall.toFixed(2)} s (job ${t.job.toFixed(2)} s)`);
        } finally {
          await Promise.all(workers.map((w) => w.stop()));
        }
      }
      results.push({ mode, walls, jobs });
    }
  } finally {
    await server.stop();
    rmSync(out, { recursive: true, force: true });
    if (!keep) rmSync(set.dir, { recursive: true, force: true });
  }

  console.log("\n| mode | wall s best | wall s median | job s median | runs |\n|---|---|---|---|---|");
  for (const r of results) {
    const w = stats(r.walls, false);
    console.log(
      `| ${r.mode} | ${w.best.toFixed(2)} | ${w.median.toFixed(2)} | ${stats(r.jobs, false).median.toFixed(2)} | ${r.walls.map((x) => x.toFixed(2)).join(", ")} |`,
    );
  }
  const one = results.find((r) => r.mode === "nats-1w");
  const two = results.find((r) => r.mode === "nats-2w");
  if (one && two) {
    const best = stats(one.walls, false).best / stats(two.walls, false).best;
    const median = stats(one.walls, false).median / stats(two.walls, false).median;
    console.log(`\nspeedup 2 workers vs 1 (wall): best ${best.toFixed(2)}×, median ${median.toFixed(2)}× (target ≥ 1.7×)`);
  }
}

mkdirSync(join(ROOT, ".bench"), { recursive: true });
await main();
process.exit(0);
