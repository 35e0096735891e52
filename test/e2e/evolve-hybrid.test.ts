/**
 * `genome: {kind: hybrid}` end to end on arith-llama with a tiny budget: a parameter-space phase,
 * its best merged to OUT/ps/model, a layer-path phase over that model and the experts, and
 * OUT/best.yml = the better phase's best by fitness, which `mergeloom merge` (after the PS merge)
 * reproduces with the recorded score. Needs the built CLI (`npm run build`).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";

let dir: string;
const TASKS = ["add", "sub"];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-evolve-hybrid-"));
  for (const t of TASKS) {
    const lines = readFileSync(join(FIXTURES, "eval", `${t}.jsonl`), "utf8")
      .split("\n")
      .slice(0, 30);
    await writeFile(join(dir, `${t}.jsonl`), lines.join("\n") + "\n");
  }
  await writeFile(
    join(dir, "search.yml"),
    [
      "genome:",
      "  kind: hybrid",
      "  merge:",
      `    models: [${join(FIXTURES, "expert-add")}, ${join(FIXTURES, "expert-sub")}]`,
      "    merge_method: task_arithmetic",
      `    base_model: ${join(FIXTURES, "base")}`,
      "    layer_granularity: 2",
      "  dfs: { repeats: 1, max_layers: 6 }",
      "fitness:",
      `  graph: ${join(FIXTURES, "eval", "model.onnx")}`,
      `  vocab: ${join(FIXTURES, "base", "vocab.json")}`,
      "  tasks:",
      ...TASKS.map((t) => `    - { name: ${t}, kind: accuracy, data: ${join(dir, `${t}.jsonl`)} }`),
      "search: { budget: 24, population: 6, seed: 3, split: 0.5 }",
      "",
    ].join("\n"),
  );
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface State {
  evaluations: unknown[];
  best: { fitness: number } | null;
}

describe("hybrid search", () => {
  test("a layer-path share too small for one generation fails before the parameter-space phase, naming the budget that fits", async () => {
    const small = join(dir, "small.yml");
    const text = await readFile(join(dir, "search.yml"), "utf8");
    await writeFile(
      small,
      text.replace("search: { budget: 24, population: 6, seed: 3, split: 0.5 }", "search: { budget: 12, population: 6, seed: 3, split: 0.75 }"),
    );
    const out = join(dir, "out-small");
    const r = await runCli(["evolve", small, "-o", out], { timeoutMs: 60_000 });
    assert.notEqual(r.code, 0);
    assert.equal(
      r.stderr.trim().split("\n").at(-1),
      "mergeloom: config search.budget: the layer-path phase gets 3 of the 12 evaluations (search.split 0.75), fewer than one generation needs (6); raise search.budget to at least 23 or lower search.split",
    );
    assert.ok(!existsSync(join(out, "ps", "state.json")), "no parameter-space evaluation ran");
  });

  test("runs the parameter-space phase, then a layer path over its merge, and keeps the better best", async () => {
    const out = join(dir, "out");
    const r = await runCli(["evolve", join(dir, "search.yml"), "-o", out, "--json"], { timeoutMs: 240_000 });
    assert.equal(r.code, 0, r.stderr);
    const ps = JSON.parse(await readFile(join(out, "ps", "state.json"), "utf8")) as State;
    const dfs = JSON.parse(await readFile(join(out, "dfs", "state.json"), "utf8")) as State;
    assert.equal(ps.evaluations.length, 12);
    assert.equal(dfs.evaluations.length, 12);
    assert.ok(existsSync(join(out, "ps", "model", "config.json")), "the PS best is merged to ps/model");
    const dfsBest = readFileSync(join(out, "dfs", "best.yml"), "utf8");
    assert.match(dfsBest, new RegExp(`model: ${join(out, "ps", "model").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`), "the layer path draws on the PS model");
    const winner = dfs.best!.fitness > ps.best!.fitness ? "dfs" : "ps";
    assert.equal(await readFile(join(out, "best.yml"), "utf8"), await readFile(join(out, winner, "best.yml"), "utf8"));
    assert.equal(existsSync(join(out, "best.onnx")), winner === "dfs");
    const report = await readFile(join(out, "report.md"), "utf8");
    assert.match(report, new RegExp(`best.yml is the ${winner === "dfs" ? "layer-path" : "parameter-space"} phase's best`));
    // the recorded score is reproduced from the config(s)
    const model = join(dir, "model");
    const m = await runCli(["merge", join(out, "best.yml"), "-o", model, "--json"]);
    assert.equal(m.code, 0, m.stderr);
    const onnx = winner === "dfs" ? join(out, "best.onnx") : join(FIXTURES, "eval", "model.onnx");
    const e = await runCli(["eval", model, "--onnx", onnx, "--data", TASKS.map((t) => join(dir, `${t}.jsonl`)).join(","), "--json"]);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(JSON.parse(e.stdout).mean, Math.max(ps.best!.fitness, dfs.best!.fitness));
  });
});
