/**
 * Worker-side scorers over a real nats-server with real worker processes: a search whose fitness
 * is a named scorer (a Node script computing a known function of the weights) gives the same
 * evaluations and best.yml on two workers that have the scorer as in-process with `--scorer`;
 * a third worker without the scorer never takes a task; a worker SIGKILLed mid-evaluation costs
 * one redelivery; the score of a known merge equals the value computed here from the fixture bytes.
 * Needs the built CLI (`npm run build`).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES, REPO_ROOT } from "../harness/repo-root.js";
import { Proc, startWorker, uniquePrefix } from "../harness/cluster.js";
import { assertSameSearch, searchOutputs, type SearchOutputs } from "../harness/search-outputs.js";

const SCORER = `normsum=${process.execPath} ${join(REPO_ROOT, "test", "scorers", "norm-sum.mjs")} {checkpoint}`;
let server: NatsServerHandle;
let dir: string;
let search: string;
let local: SearchOutputs;
const procs: Proc[] = [];
const track = (p: Proc) => (procs.push(p), p);

/** bf16 bits → number, and round-to-nearest-even of a float32 to bf16 — written here, not taken from mergeloom. */
const bf16 = (bits: number): number => new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
function roundBf16(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  const r = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  return bf16(r & 0xffff);
}
function normOf(model: string): number[] {
  const buf = readFileSync(join(FIXTURES, model, "model.safetensors"));
  const n = Number(buf.readBigUInt64LE(0));
  const t = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"))["model.norm.weight"];
  const out: number[] = [];
  for (let i = t.data_offsets[0]; i < t.data_offsets[1]; i += 2) out.push(bf16(buf.readUInt16LE(8 + n + i)));
  return out;
}

before(async () => {
  server = await startNatsServer({ jetstream: true });
  dir = await mkdtemp(join(tmpdir(), "mergeloom-evolve-scorer-"));
  search = join(dir, "search.yml");
  await writeFile(
    search,
    [
      "genome:",
      `  models: [${join(FIXTURES, "expert-add")}, ${join(FIXTURES, "expert-rev")}]`,
      "  merge_method: linear",
      "  layer_granularity: 2",
      "fitness:",
      "  tasks: [{ name: normsum, kind: scorer, scorer: normsum }]",
      "search: { budget: 12, population: 6, seed: 5 }",
      "baselines:",
      "  - name: half and half",
      "    config:",
      "      merge_method: linear",
      `      models: [{ model: ${join(FIXTURES, "expert-add")}, parameters: { weight: 0.5 } }, { model: ${join(FIXTURES, "expert-rev")}, parameters: { weight: 0.5 } }]`,
      "      dtype: float32",
      "      out_dtype: bfloat16",
      "",
    ].join("\n"),
  );
  const out = join(dir, "local");
  const r = await runCli(["evolve", search, "-o", out, "--json", "--scorer", SCORER], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  local = await searchOutputs(out);
});
after(async () => {
  await Promise.all(procs.map((p) => (p.child.exitCode === null ? p.kill("SIGKILL") : undefined)));
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

function evolveOverNats(prefix: string, out: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(["evolve", search, "-o", out, "--json", "--nats", server.url, "--nats-prefix", prefix], { timeoutMs: 180_000 });
}

const scorerWorker = (name: string, prefix: string, scratch: string, extra: string[] = [], delayMs?: number) =>
  track(startWorker(server.url, { name, prefix, delayMs, ackWaitS: 2, extra: ["--scorer", SCORER, "--gpu", "7", "--scratch-dir", scratch, ...extra] }));

describe("worker-side scorers", () => {
  test("the scorer's score of a known merge equals the norm sum computed from the fixture bytes", () => {
    const a = normOf("expert-add");
    const b = normOf("expert-rev");
    // linear, normalized weights 0.5/0.5, fp32 arithmetic, rounded once to bf16
    const expected = a.reduce((s, _, i) => s + roundBf16(Math.fround(Math.fround(0.5 * a[i]) + Math.fround(0.5 * b[i]))), 0);
    assert.equal(local.state.baselines[0].scores.normsum, expected);
    assert.ok(local.state.evaluations.every((e) => typeof e.fitness === "number" && Number.isFinite(e.fitness)));
  });

  test("two workers with the scorer give the local search's evaluations and best.yml; a worker without it takes nothing", async () => {
    const prefix = uniquePrefix();
    const scratch = [join(dir, "scratch-1"), join(dir, "scratch-2")];
    const ws = [scorerWorker("s1", prefix, scratch[0]), scorerWorker("s2", prefix, scratch[1])];
    const plain = track(startWorker(server.url, { name: "plain", prefix }));
    await Promise.all([...ws, plain].map((w) => w.waitFor((s) => /eval worker \S+ ready/.test(s), 20_000, "eval worker ready")));
    assert.match(ws[0].err, /scorers: normsum/);
    const out = join(dir, "nats-two");
    const r = await evolveOverNats(prefix, out);
    assert.equal(r.code, 0, r.stderr);
    assertSameSearch(await searchOutputs(out), local, 12);
    const counts = ws.map((w) => (w.err.match(/ of search \S+ started/g) ?? []).length);
    assert.equal(counts[0] + counts[1], 13, ws.map((w) => w.err).join("\n")); // 12 candidates + 1 baseline
    assert.doesNotMatch(plain.err, / of search \S+ started/, "a worker without the scorer must never take its tasks");
    // scratch is cleaned after every evaluation
    for (const s of scratch) assert.deepEqual(await readdir(s), []);
    await Promise.all([...ws, plain].map((w) => w.kill("SIGTERM")));
  });

  test("a scorer worker SIGKILLed mid-evaluation costs one redelivery and the search ends the same", async () => {
    const prefix = uniquePrefix();
    const victim = scorerWorker("victim", prefix, join(dir, "scratch-v"), [], 60_000);
    await victim.waitFor((s) => /eval worker \S+ ready/.test(s), 20_000, "victim ready");
    const out = join(dir, "nats-kill");
    const run = evolveOverNats(prefix, out);
    await victim.waitFor((s) => / of search \S+ started \(attempt 1/.test(s), 30_000, "an evaluation on the victim");
    const taskId = /task (\S+) of search \S+ started/.exec(victim.err)![1];
    const survivor = scorerWorker("survivor", prefix, join(dir, "scratch-s"));
    await victim.kill("SIGKILL");
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assertSameSearch(await searchOutputs(out), local, 12);
    const redelivered = survivor.err.match(/ of search \S+ started \(attempt [2-9]/g) ?? [];
    assert.equal(redelivered.length, 1, survivor.err);
    assert.match(survivor.err, new RegExp(`task ${taskId} of search \\S+ started \\(attempt 2`));
    await survivor.kill("SIGTERM");
  });
});
