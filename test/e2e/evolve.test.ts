// `mergeloom evolve` end to end on arith-llama with a small budget: best.yml is a plain mergekit
// config that `mergeloom merge` turns into a model scoring exactly the search's best fitness, and
// a search killed (SIGKILL) after a generation and resumed ends exactly like an uninterrupted one.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIXTURES, REPO_ROOT } from "../harness/repo-root.js";

const ENTRY = join(REPO_ROOT, "test", "e2e", "evolve-cli.ts");
let dir: string;

function cli(args: string[], opts: { killWhen?: () => boolean } = {}): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", ENTRY, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const poll = opts.killWhen
      ? setInterval(() => {
          if (opts.killWhen!()) child.kill("SIGKILL");
        }, 20)
      : undefined;
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const TASKS = ["add", "sub", "mul", "rev"];

function searchYaml(budget: number): string {
  return [
    "genome:",
    "  models:",
    ...["add", "sub", "mul", "rev"].map((e) => `    - ${join(FIXTURES, `expert-${e}`)}`),
    "  merge_method: task_arithmetic",
    `  base_model: ${join(FIXTURES, "base")}`,
    "  layer_granularity: 2",
    "fitness:",
    `  graph: ${join(FIXTURES, "eval", "model.onnx")}`,
    `  vocab: ${join(FIXTURES, "base", "vocab.json")}`,
    "  objective: pareto",
    "  tasks:",
    ...TASKS.map((t) => `    - { name: ${t}, kind: accuracy, data: ${join(dir, `${t}.jsonl`)} }`),
    "search:",
    `  budget: ${budget}`,
    "  population: 6",
    "  seed: 7",
    "",
  ].join("\n");
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-evolve-e2e-"));
  // 60 examples per task keep each evaluation short; the same files score the merged model.
  for (const t of TASKS) {
    const lines = readFileSync(join(FIXTURES, "eval", `${t}.jsonl`), "utf8")
      .split("\n")
      .slice(0, 60);
    await writeFile(join(dir, `${t}.jsonl`), lines.join("\n") + "\n");
  }
  await writeFile(join(dir, "search.yml"), searchYaml(18));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface State {
  generation: number;
  evaluations: { id: string; genotype: number[]; fitness: number; scores: Record<string, number> }[];
  best: { id: string; fitness: number; scores: Record<string, number> } | null;
  strategy: unknown;
  stats: unknown[];
}
const readState = async (out: string) => JSON.parse(await readFile(join(out, "state.json"), "utf8")) as State;

describe("mergeloom evolve", () => {
  let uninterrupted: State;

  test("a small search writes best.yml, a report and a chart, and mergeloom merge reproduces the best score", async () => {
    const out = join(dir, "run-a");
    const r = await cli(["evolve", join(dir, "search.yml"), "-o", out]);
    assert.equal(r.code, 0, r.stderr);
    uninterrupted = await readState(out);
    assert.equal(uninterrupted.evaluations.length, 18, "budget 18 with population 6 is three generations");
    assert.equal(uninterrupted.generation, 3);
    assert.ok(uninterrupted.best, "a best candidate");
    const bestFit = uninterrupted.best.fitness;
    assert.equal(bestFit, Math.max(...uninterrupted.evaluations.map((e) => e.fitness)));
    for (const f of ["best.yml", "report.md", "fitness.svg", "front.json"]) assert.ok(existsSync(join(out, f)), f);
    assert.match(await readFile(join(out, "fitness.svg"), "utf8"), /<polyline /);
    assert.match(await readFile(join(out, "report.md"), "utf8"), /\| 2 \| 18 \|/);

    const model = join(dir, "best-model");
    const m = await cli(["merge", join(out, "best.yml"), "-o", model, "--threads", "0"]);
    assert.equal(m.code, 0, m.stderr);
    const e = await cli([
      "eval",
      model,
      "--onnx",
      join(FIXTURES, "eval", "model.onnx"),
      "--data",
      TASKS.map((t) => join(dir, `${t}.jsonl`)).join(","),
      "--device",
      "cpu",
      "--json",
    ]);
    assert.equal(e.code, 0, e.stderr);
    const report = JSON.parse(e.stdout) as { tasks: { name: string; accuracy: number }[]; mean: number };
    for (const t of report.tasks) assert.equal(t.accuracy, uninterrupted.best.scores[t.name], `task ${t.name}`);
    assert.equal(report.mean, bestFit);
  });

  test("a search killed after its first generation and resumed ends exactly like the uninterrupted run", async () => {
    assert.ok(uninterrupted, "needs the first test's run");
    const out = join(dir, "run-b");
    const stateFile = join(out, "state.json");
    const killed = await cli(["evolve", join(dir, "search.yml"), "-o", out], {
      killWhen: () => {
        try {
          return (JSON.parse(readFileSync(stateFile, "utf8")) as State).generation >= 1;
        } catch {
          return false;
        }
      },
    });
    assert.equal(killed.signal, "SIGKILL", `the child was killed mid-search (exit ${killed.code}, ${killed.stderr})`);
    const mid = await readState(out);
    assert.ok(mid.generation >= 1 && mid.generation < 3, `killed mid-search at generation ${mid.generation}`);

    const again = await cli(["evolve", join(dir, "search.yml"), "-o", out]);
    assert.notEqual(again.code, 0, "an existing state needs --resume");
    assert.match(again.stderr, /--resume/);

    const resumed = await cli(["evolve", join(dir, "search.yml"), "-o", out, "--resume"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const final = await readState(out);
    assert.deepEqual(final.evaluations, uninterrupted.evaluations);
    assert.deepEqual(final.strategy, uninterrupted.strategy);
    assert.deepEqual(final.best, uninterrupted.best);
    assert.equal(await readFile(join(out, "best.yml"), "utf8"), await readFile(join(dir, "run-a", "best.yml"), "utf8"));
  });
});
