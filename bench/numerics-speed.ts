/**
 * Speed and memory of `--numerics mergekit` (and `mergekit-torch1.13`) against the default
 * numerics, same inputs, same run: merges synthetic bf16 Llama-shaped checkpoints through the CLI
 * (child processes, so peak RSS is the whole process's) with each method in each mode and reports
 * merge seconds, peak RSS and the ratio to the default.
 *
 *   npm run build && node bench/dist/numerics-speed.js [--size-gb 0.25] [--methods linear,task_arithmetic,ties,model_stock,karcher]
 *                                                     [--modes default,mergekit,mergekit-torch1.13]
 *                                                     [--dtype bfloat16] [--repeat 1] [--threads N]
 *
 * The dtype is the config's `dtype:` (the compute dtype in mergekit mode; default mode computes in
 * fp32 either way). Results: a markdown table on stdout and .bench/numerics-speed.json.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeSyntheticCheckpoints, parseFlag, repoRoot, type SyntheticSet } from "./make-synthetic-checkpoints.js";

const ROOT = repoRoot();
const CLI = join(ROOT, "bin", "mergeloom.js");

interface Run {
  seconds: number;
  bytesRead: number;
  peakRssBytes: number;
}

function configFor(method: string, set: SyntheticSet, dtype: string): string {
  const [m0, m1, m2] = set.paths.map((p) => JSON.stringify(p));
  const tail = `dtype: ${dtype}\nout_dtype: bfloat16\n`;
  switch (method) {
    case "linear":
      return `merge_method: linear\nmodels:\n  - model: ${m0}\n    parameters: { weight: 0.5 }\n  - model: ${m1}\n    parameters: { weight: 0.3 }\n  - model: ${m2}\n    parameters: { weight: 0.2 }\n${tail}`;
    case "task_arithmetic":
      return `merge_method: task_arithmetic\nbase_model: ${m0}\nmodels:\n  - model: ${m1}\n    parameters: { weight: 0.7 }\n  - model: ${m2}\n    parameters: { weight: 0.3 }\nparameters: { lambda: 0.9 }\n${tail}`;
    case "ties":
    case "breadcrumbs":
      return `merge_method: ${method}\nbase_model: ${m0}\nmodels:\n  - model: ${m1}\n    parameters: { weight: 1.0, density: 0.5 }\n  - model: ${m2}\n    parameters: { weight: 1.0, density: 0.5 }\n${tail}`;
    case "karcher":
      return `merge_method: karcher\nmodels:\n  - model: ${m0}\n  - model: ${m1}\n  - model: ${m2}\n${tail}`;
    case "model_stock":
      return `merge_method: model_stock\nbase_model: ${m0}\nmodels:\n  - model: ${m1}\n  - model: ${m2}\n  - model: ${m0}\n${tail}`;
    default:
      throw new Error(`bench: no config for method '${method}' (linear, task_arithmetic, ties, breadcrumbs, model_stock, karcher)`);
  }
}

function runCli(cfg: string, out: string, numerics: string, threads: string | undefined): Promise<Run> {
  const args = [CLI, "merge", cfg, "-o", out, "--overwrite", "--json", "--numerics", numerics];
  if (threads !== undefined) args.push("--threads", threads);
  const useTime = existsSync("/usr/bin/time");
  const cmd = useTime ? "/usr/bin/time" : process.execPath;
  const argv = useTime ? ["-v", process.execPath, ...args] : args;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`bench: merge ${cfg} (--numerics ${numerics}) exited with ${code}:\n${stderr.slice(-3000)}`));
      const done = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { type: string; seconds?: number; bytesRead?: number })
        .find((e) => e.type === "done");
      if (!done) return reject(new Error(`bench: no done event from ${cfg}`));
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      resolvePromise({ seconds: done.seconds ?? NaN, bytesRead: done.bytesRead ?? 0, peakRssBytes: m ? Number(m[1]) * 1024 : NaN });
    });
  });
}

async function main(argv: string[]): Promise<void> {
  const sizeGb = Number(parseFlag(argv, "--size-gb") ?? "0.25");
  const methods = (parseFlag(argv, "--methods") ?? "linear,task_arithmetic,ties,model_stock").split(",");
  const dtype = parseFlag(argv, "--dtype") ?? "bfloat16";
  const repeat = Number(parseFlag(argv, "--repeat") ?? "1");
  const threads = parseFlag(argv, "--threads");
  const modes = (parseFlag(argv, "--modes") ?? "default,mergekit").split(",");
  const work = join(ROOT, ".bench");
  mkdirSync(work, { recursive: true });
  const set = makeSyntheticCheckpoints({ sizeGb, models: 3, dir: work });
  const rows: Array<{ method: string; mode: string; best: Run }> = [];
  for (const method of methods) {
    const cfg = join(work, `numerics-${method}.yml`);
    writeFileSync(cfg, configFor(method, set, dtype));
    for (const mode of modes) {
      const runs: Run[] = [];
      for (let r = 0; r < repeat; r++) {
        const out = join(work, `numerics-out-${method}-${mode}`);
        runs.push(await runCli(cfg, out, mode, threads));
        rmSync(out, { recursive: true, force: true });
      }
      const best = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
      rows.push({ method, mode, best });
      process.stderr.write(`${method} --numerics ${mode}: ${best.seconds.toFixed(2)} s, ${(best.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`);
    }
  }
  const out: string[] = [];
  out.push(`3 × ${(set.bytesPerModel / 1e9).toFixed(2)} GB bf16 checkpoints, dtype: ${dtype}, out_dtype: bfloat16, best of ${repeat}`);
  out.push("");
  const others = modes.filter((m) => m !== "default");
  out.push(`| method | default s | ${others.map((m) => `${m} s (÷ default)`).join(" | ")} | peak RSS ${modes.join(" / ")} |`);
  out.push(`|---|---:|${others.map(() => "---:|").join("")}---:|`);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  for (const method of methods) {
    const best = (mode: string) => rows.find((r) => r.method === method && r.mode === mode)!.best;
    const d = best("default");
    const cells = others.map((m) => `${best(m).seconds.toFixed(2)} (${(best(m).seconds / d.seconds).toFixed(2)}×)`);
    out.push(`| ${method} | ${d.seconds.toFixed(2)} | ${cells.join(" | ")} | ${modes.map((m) => mib(best(m).peakRssBytes)).join(" / ")} |`);
  }
  process.stdout.write(out.join("\n") + "\n");
  writeFileSync(join(work, "numerics-speed.json"), JSON.stringify({ sizeGb, dtype, repeat, rows }, null, 2));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
