/**
 * `mergeloom evolve --nats` with a real nats-server and real worker processes: a seeded search
 * evaluated by two workers ends exactly like the in-process search (same evaluations, same
 * best.yml), and a worker SIGKILLed mid-evaluation costs one redelivery, not the search.
 * Needs the built CLI (`npm run build`).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";
import { Proc, startWorker, uniquePrefix } from "../harness/cluster.js";
import { assertSameSearch, searchOutputs, type SearchOutputs } from "../harness/search-outputs.js";

const TASKS = ["add", "sub", "mul", "rev"];
let server: NatsServerHandle;
let dir: string;
let search: string;
let local: SearchOutputs;
const procs: Proc[] = [];
const track = (p: Proc) => (procs.push(p), p);

before(async () => {
  server = await startNatsServer({ jetstream: true });
  dir = await mkdtemp(join(tmpdir(), "mergeloom-evolve-dist-"));
  for (const t of TASKS) {
    const lines = readFileSync(join(FIXTURES, "eval", `${t}.jsonl`), "utf8")
      .split("\n")
      .slice(0, 40);
    await writeFile(join(dir, `${t}.jsonl`), lines.join("\n") + "\n");
  }
  search = join(dir, "search.yml");
  await writeFile(
    search,
    [
      "genome:",
      "  models:",
      ...TASKS.map((e) => `    - ${join(FIXTURES, `expert-${e}`)}`),
      "  merge_method: task_arithmetic",
      `  base_model: ${join(FIXTURES, "base")}`,
      "  layer_granularity: 2",
      "fitness:",
      `  graph: ${join(FIXTURES, "eval", "model.onnx")}`,
      `  vocab: ${join(FIXTURES, "base", "vocab.json")}`,
      "  tasks:",
      ...TASKS.map((t) => `    - { name: ${t}, kind: accuracy, data: ${join(dir, `${t}.jsonl`)} }`),
      "search:",
      "  budget: 24",
      "  population: 6",
      "  seed: 11",
      "",
    ].join("\n"),
  );
  // The reference: the same search evaluated in-process.
  const out = join(dir, "local");
  const r = await runCli(["evolve", search, "-o", out, "--json"]);
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

describe("evolve over NATS workers", () => {
  test("a seeded search evaluated by two worker processes gives the in-process search's evaluations and best.yml", async () => {
    const prefix = uniquePrefix();
    const ws = [1, 2].map((i) => track(startWorker(server.url, { name: `e${i}`, prefix })));
    await Promise.all(ws.map((w) => w.waitFor((s) => /eval worker \S+ ready/.test(s), 20_000, "eval worker ready")));
    const out = join(dir, "nats-two");
    const r = await evolveOverNats(prefix, out);
    assert.equal(r.code, 0, r.stderr);
    assertSameSearch(await searchOutputs(out), local, 24);
    const counts = ws.map((w) => (w.err.match(/ of search \S+ started/g) ?? []).length);
    assert.equal(counts[0] + counts[1], 24, ws.map((w) => w.err).join("\n"));
    assert.ok(
      counts.every((n) => n > 0),
      `both workers must evaluate candidates (${counts.join(", ")})`,
    );
    await Promise.all(ws.map((w) => w.kill("SIGTERM")));
  });

  test("a worker SIGKILLed mid-evaluation costs a redelivery and the search ends the same", async () => {
    const prefix = uniquePrefix();
    const victim = track(startWorker(server.url, { name: "victim", prefix, delayMs: 60_000, ackWaitS: 2 }));
    await victim.waitFor((s) => /eval worker \S+ ready/.test(s), 20_000, "victim ready");
    const out = join(dir, "nats-kill");
    const run = evolveOverNats(prefix, out);
    await victim.waitFor((s) => / of search \S+ started \(attempt 1/.test(s), 30_000, "an evaluation on the victim");
    const taskId = /task (\S+) of search \S+ started/.exec(victim.err)![1];
    const survivor = track(startWorker(server.url, { name: "survivor", prefix, ackWaitS: 2 }));
    await victim.kill("SIGKILL");
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assertSameSearch(await searchOutputs(out), local, 24);
    assert.match(survivor.err, new RegExp(`task ${taskId} of search \\S+ started \\(attempt [2-9]`), "the killed evaluation must be redelivered");
    await survivor.kill("SIGTERM");
  });
});
