// `mergeloom evolve` with a dfs (layer path) genome on two arith-llama experts, small budget and
// eval subset: best.yml is a passthrough `slices:` config and best.onnx the graph for its layer
// count; `mergeloom merge` + `mergeloom eval --onnx best.onnx` reproduce the recorded scores.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { FIXTURES, REPO_ROOT } from "../harness/repo-root.js";

const ENTRY = join(REPO_ROOT, "test", "e2e", "evolve-cli.ts");
const TASKS = ["add", "sub"];
let dir: string;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", ENTRY, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-evolve-dfs-"));
  for (const t of TASKS) {
    const lines = readFileSync(join(FIXTURES, "eval", `${t}.jsonl`), "utf8")
      .split("\n")
      .slice(0, 40);
    await writeFile(join(dir, `${t}.jsonl`), lines.join("\n") + "\n");
  }
  await writeFile(
    join(dir, "search.yml"),
    [
      "genome:",
      "  kind: dfs",
      `  models: [${join(FIXTURES, "expert-add")}, ${join(FIXTURES, "expert-sub")}]`,
      "  repeats: 2",
      "  max_layers: 10",
      "  init: zeros", // random paths from the start: most candidates are not 4 layers long
      "fitness:",
      `  vocab: ${join(FIXTURES, "base", "vocab.json")}`,
      "  tasks:",
      ...TASKS.map((t) => `    - { name: ${t}, kind: accuracy, data: ${join(dir, `${t}.jsonl`)} }`),
      "search: { budget: 12, population: 6, seed: 3 }",
      "",
    ].join("\n"),
  );
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface State {
  evaluations: { id: string; fitness: number }[];
  best: { id: string; fitness: number; scores: Record<string, number> } | null;
}

describe("mergeloom evolve with a dfs genome", () => {
  test("a small layer-path search writes best.yml and best.onnx, and merge + eval reproduce the best scores", async () => {
    const out = join(dir, "run");
    const r = await cli(["evolve", join(dir, "search.yml"), "-o", out]);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(await readFile(join(out, "state.json"), "utf8")) as State;
    assert.equal(state.evaluations.length, 12);
    assert.ok(state.best, "a best candidate");
    assert.equal(state.best.fitness, Math.max(...state.evaluations.map((e) => e.fitness)));
    for (const f of ["best.yml", "best.onnx", "report.md", "fitness.svg"]) assert.ok(existsSync(join(out, f)), f);

    const yml = await readFile(join(out, "best.yml"), "utf8");
    const cfg = parse(yml) as { merge_method: string; slices: { sources: { layer_range: [number, number] }[] }[] };
    assert.equal(cfg.merge_method, "passthrough");
    const layers = cfg.slices.reduce((n, s) => n + s.sources[0].layer_range[1] - s.sources[0].layer_range[0], 0);
    assert.ok(layers >= 1 && layers <= 10, `path length ${layers} within max_layers`);
    // Seed 3 gives a 10-layer best: the fixture's 4-layer graph could not score it, best.onnx must.
    assert.notEqual(layers, 4, "the best path exercises a generated graph of another depth");
    assert.match(yml, new RegExp(`layer path: ${layers} layers`));
    assert.match(await readFile(join(out, "report.md"), "utf8"), new RegExp(`^${layers} layers \\(best.onnx`, "m"));

    const model = join(dir, "best-model");
    const m = await cli(["merge", join(out, "best.yml"), "-o", model, "--threads", "0"]);
    assert.equal(m.code, 0, m.stderr);
    assert.equal((JSON.parse(await readFile(join(model, "config.json"), "utf8")) as { num_hidden_layers: number }).num_hidden_layers, layers);
    const data = TASKS.map((t) => join(dir, `${t}.jsonl`)).join(",");
    const e = await cli([
      "eval",
      model,
      "--onnx",
      join(out, "best.onnx"),
      "--data",
      data,
      "--vocab",
      join(FIXTURES, "base", "vocab.json"),
      "--device",
      "cpu",
      "--json",
    ]);
    assert.equal(e.code, 0, e.stderr);
    const report = JSON.parse(e.stdout) as { tasks: { name: string; accuracy: number }[]; mean: number };
    for (const t of report.tasks) assert.equal(t.accuracy, state.best.scores[t.name], `task ${t.name}`);
    assert.equal(report.mean, state.best.fitness);
  });

  test("a dfs search refuses a fitness.graph, since it generates its graphs", async () => {
    const text = (await readFile(join(dir, "search.yml"), "utf8")).replace("fitness:\n", `fitness:\n  graph: ${join(FIXTURES, "eval", "model.onnx")}\n`);
    await writeFile(join(dir, "bad.yml"), text);
    const r = await cli(["evolve", join(dir, "bad.yml"), "-o", join(dir, "bad-run")]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /fitness\.graph: not used by a dfs search/);
  });
});
