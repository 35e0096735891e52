/**
 * Evaluations per second of the evolutionary search on arith-llama (examples/evolve-arith.yml,
 * reduced budget, baselines dropped): in-process with 1 and 2 concurrent evaluations, in-process
 * writing every candidate to disk (the in-memory path's baseline), and over NATS with 1 and 2
 * worker processes.
 *
 *   npm run build && node bench/dist/evolve-throughput.js [--budget 48]
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Proc, startWorker, uniquePrefix } from "@mergeloom/test/harness";
import { startNatsServer } from "@mergeloom/test/harness";
import { REPO_ROOT } from "@mergeloom/test/harness";

const budget = (() => {
  const i = process.argv.indexOf("--budget");
  return i >= 0 ? Number(process.argv[i + 1]) : 48;
})();

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "evolve-bench-"));
  // The example without its baselines, and with absolute paths so workers in any cwd read it.
  const text = readFileSync(join(REPO_ROOT, "examples", "evolve-arith.yml"), "utf8")
    .split("\nbaselines:")[0]
    .replaceAll("fixtures/", `${REPO_ROOT}/fixtures/`);
  const search = join(dir, "search.yml");
  writeFileSync(search, text);
  const run = async (name: string, args: string[]): Promise<{ name: string; seconds: number; perSec: number }> => {
    const t0 = performance.now();
    const p = new Proc(["evolve", search, "-o", join(dir, name), "--budget", String(budget), "--json", ...args]);
    const code = await p.exited;
    if (code !== 0) throw new Error(`${name} failed:\n${p.err}`);
    const seconds = (performance.now() - t0) / 1000;
    // The search's own clock (evaluation time, without process start-up and data loading).
    const done = p.events().find((e) => e.type === "done") as { evaluations: number; seconds: number };
    return { name, seconds, perSec: done.evaluations / done.seconds };
  };
  const rows = [];
  rows.push(await run("in-memory, 1 evaluation at a time", ["--workers", "1"]));
  rows.push(await run("in-memory, 2 at a time", ["--workers", "2"]));
  rows.push(await run("via disk (write + read each candidate), 1 at a time", ["--workers", "1", "--via-disk"]));
  const server = await startNatsServer({ jetstream: true });
  try {
    for (const n of [1, 2]) {
      const prefix = uniquePrefix();
      const ws = Array.from({ length: n }, (_, i) => startWorker(server.url, { name: `e${i}`, prefix, threads: 1 }));
      await Promise.all(ws.map((w) => w.waitFor((s) => s.includes("eval worker"), 30_000, "eval worker ready")));
      rows.push(await run(`NATS, ${n} worker process${n > 1 ? "es" : ""}`, ["--nats", server.url, "--nats-prefix", prefix]));
      await Promise.all(ws.map((w) => w.kill("SIGTERM")));
    }
  } finally {
    await server.stop();
  }
  console.log(`\n${budget} evaluations per run, examples/evolve-arith.yml (500 examples × 4 tasks per evaluation)\n`);
  console.log("| setup | wall seconds (incl. start-up) | evaluations/s (search clock) |\n|---|---:|---:|");
  for (const r of rows) console.log(`| ${r.name} | ${r.seconds.toFixed(1)} | ${r.perSec.toFixed(2)} |`);
}

await main();
