/**
 * A config with thousands of model entries must not plan and then fail on the queue's message
 * limit (issue 9 item 16): a layer's task that would exceed it is split by tensor; a single
 * tensor that alone exceeds it fails the plan naming the limit and what to change; a local merge
 * (no queue limit) just works.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeMessage, MAX_MESSAGE_BYTES } from "@mergeloom/proto/codec";
import { MergeloomError } from "@mergeloom/proto/errors";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { planMerge } from "@mergeloom/engine/job";
import { buildTasks } from "@mergeloom/engine/plan";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { runCli } from "../harness/run-cli.js";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { writeFakeCheckpoint, type FakeTensor } from "../harness/synthetic-checkpoint.js";
import { readRawTensors } from "../harness/rewrite-checkpoint.js";

const TENSORS: FakeTensor[] = [
  { name: "model.embed_tokens.weight", dtype: "F32", shape: [4, 4] },
  { name: "model.layers.0.input_layernorm.weight", dtype: "F32", shape: [4] },
  { name: "model.layers.0.mlp.up_proj.weight", dtype: "F32", shape: [4, 4] },
  { name: "model.layers.0.mlp.down_proj.weight", dtype: "F32", shape: [4, 4] },
  { name: "model.norm.weight", dtype: "F32", shape: [4] },
];

let dir: string;
/** Long directory names make each input's reference ~1.7 kB, so a few hundred models reach the limit quickly. */
const LONG = () => join(dir, "d".repeat(200), "e".repeat(200), "f".repeat(200));
let server: NatsServerHandle | undefined;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-tasksize-"));
  await writeFakeCheckpoint(join(dir, "model"), TENSORS, { seed: 3 });
  await mkdir(LONG(), { recursive: true });
});
after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A linear config over `n` distinct references (symlinks) to the same small model. */
async function manyModels(n: number): Promise<string> {
  const lines = ["merge_method: linear", "models:"];
  for (let i = 0; i < n; i++) {
    const p = join(LONG(), `${"m".repeat(200)}-${String(i).padStart(5, "0")}`);
    if (!existsSync(p)) await symlink(join(dir, "model"), p);
    lines.push(`  - model: ${p}`, "    parameters: { weight: 1 }");
  }
  const cfg = join(dir, `many-${n}.yml`);
  await writeFile(cfg, lines.join("\n") + "\n");
  return cfg;
}

const planOf = async (cfg: string) => planMerge(parseMergeConfig(await readFile(cfg, "utf8"), cfg, createDefaultRegistry()));

describe("task messages stay under the queue's limit", () => {
  test("a layer whose task would exceed the limit is split by tensor, each message under the limit", async () => {
    const plan = await planOf(await manyModels(250));
    const { tasks } = buildTasks(plan, { jobId: "j", seed: 0, maxShardBytes: 1e9, outDir: "discard://" });
    // pre, layer 0 (3 tensors, each ~0.45 MB with 250 inputs), post: the layer becomes 2 or 3 tasks.
    assert.ok(tasks.length >= 4, `${tasks.length} tasks`);
    assert.ok(tasks.some((t) => t.tensors.length > 1) || tasks.length === 5);
    assert.deepEqual(
      tasks
        .map((t) => t.tensors.map((x) => x.name))
        .flat()
        .sort(),
      TENSORS.map((t) => t.name).sort(),
    );
    for (const t of tasks) assert.ok(encodeMessage("merge-task", t).byteLength <= MAX_MESSAGE_BYTES - 4096);
  });

  test("a single tensor over the limit fails the plan naming the limit and what to change", async () => {
    const plan = await planOf(await manyModels(700));
    assert.throws(
      () => buildTasks(plan, { jobId: "j", seed: 0, maxShardBytes: 1e9, outDir: "discard://" }),
      (e: unknown) =>
        e instanceof MergeloomError &&
        e.code === "CONFIG_INVALID" &&
        /^plan model\.embed_tokens\.weight: its task message would be \d+ bytes \(700 inputs\), over the 1048576-byte message limit of the task queue \(NATS max_payload\); merge at most about \d+ models at once/.test(
          e.message,
        ),
    );
    assert.equal(buildTasks(plan, { jobId: "j", seed: 0, maxShardBytes: 1e9, outDir: "discard://", maxMessageBytes: Infinity }).tasks.length, 3);
  });

  test("a local merge of 700 models works and `plan` warns that --nats would fail", async () => {
    const cfg = await manyModels(700);
    const out = join(dir, "out-local");
    const r = await runCli(["merge", cfg, "-o", out, "--threads", "1", "--json"], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    // Linear of identical models with equal weights is the model itself, up to fp32 rounding of
    // the 700-term sum (relative error below 700 × 2^-24 ≈ 4e-5).
    const want = await readRawTensors(join(dir, "model", "model.safetensors"));
    const got = await readRawTensors(join(out, "model.safetensors"));
    for (const w of want) {
      const a = new Float32Array(w.data.buffer.slice(w.data.byteOffset, w.data.byteOffset + w.data.byteLength));
      const g = got.find((x) => x.name === w.name)!.data;
      const b = new Float32Array(g.buffer.slice(g.byteOffset, g.byteOffset + g.byteLength));
      assert.equal(b.length, a.length, w.name);
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(b[i] - a[i]) <= 1e-4 * Math.abs(a[i]) + 1e-12, `${w.name}[${i}]: ${b[i]} vs ${a[i]}`);
    }
    const p = await runCli(["plan", cfg]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(
      p.stderr,
      /^warning: plan model\.embed_tokens\.weight: its task message would be .*: a merge with --nats will fail; a local merge \(no --nats\) has no message limit$/m,
    );
  });

  test("with --nats the same config fails before any task is published: one line, no output", async () => {
    server = await startNatsServer({ jetstream: true });
    const cfg = await manyModels(700);
    const out = join(dir, "out-nats");
    const r = await runCli(["merge", cfg, "-o", out, "--nats", server.url, "--nats-prefix", `ts${Date.now().toString(36)}`, "--json"], { timeoutMs: 60_000 });
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /^mergeloom: plan model\.embed_tokens\.weight: its task message would be \d+ bytes \(700 inputs\), over the 1048576-byte message limit/,
    );
    assert.equal(existsSync(out), false);
  });
});
