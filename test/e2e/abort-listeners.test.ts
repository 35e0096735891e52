/**
 * A merge of a many-layer model with more than ten tensors per layer (Qwen2: q/k/v biases; Gemma2:
 * four norms) must not trip Node's MaxListenersExceededWarning: each task adds one abort listener
 * to the caller's signal and removes it when the task settles (issue 9 item 20).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getEventListeners } from "node:events";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { planMerge } from "@mergeloom/engine/job";
import { buildTasks } from "@mergeloom/engine/plan";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { LocalMergeExecutor } from "@mergeloom/engine/driver";
import { FIXTURES } from "../harness/repo-root.js";
import { runCli } from "../harness/run-cli.js";
import { writeFakeCheckpoint, type FakeTensor } from "../harness/synthetic-checkpoint.js";

const LAYERS = 24;
const H = 8;

function qwen2Tensors(): FakeTensor[] {
  const t: FakeTensor[] = [{ name: "model.embed_tokens.weight", dtype: "BF16", shape: [16, H] }];
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}.`;
    t.push(
      { name: `${p}input_layernorm.weight`, dtype: "BF16", shape: [H] },
      { name: `${p}post_attention_layernorm.weight`, dtype: "BF16", shape: [H] },
      ...["q", "k", "v"].flatMap((x): FakeTensor[] => [
        { name: `${p}self_attn.${x}_proj.weight`, dtype: "BF16", shape: [H, H] },
        { name: `${p}self_attn.${x}_proj.bias`, dtype: "BF16", shape: [H] },
      ]),
      { name: `${p}self_attn.o_proj.weight`, dtype: "BF16", shape: [H, H] },
      { name: `${p}mlp.up_proj.weight`, dtype: "BF16", shape: [2 * H, H] },
      { name: `${p}mlp.gate_proj.weight`, dtype: "BF16", shape: [2 * H, H] },
      { name: `${p}mlp.down_proj.weight`, dtype: "BF16", shape: [H, 2 * H] },
    );
  }
  t.push({ name: "model.norm.weight", dtype: "BF16", shape: [H] }, { name: "lm_head.weight", dtype: "BF16", shape: [16, H] });
  return t;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-listeners-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("abort listeners do not pile up on the merge's signal", () => {
  for (const threads of ["2", "0"]) {
    test(`a ${LAYERS}-layer Qwen2-shaped TIES merge with --threads ${threads} prints no MaxListenersExceededWarning`, async () => {
      const a = await writeFakeCheckpoint(join(dir, `a${threads}`), qwen2Tensors(), { seed: 1, numLayers: LAYERS });
      const b = await writeFakeCheckpoint(join(dir, `b${threads}`), qwen2Tensors(), { seed: 2, numLayers: LAYERS });
      const base = await writeFakeCheckpoint(join(dir, `base${threads}`), qwen2Tensors(), { seed: 3, numLayers: LAYERS });
      const cfg = join(dir, `cfg${threads}.yml`);
      await writeFile(
        cfg,
        `merge_method: ties\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: { weight: 1, density: 0.5 }\n  - model: ${b}\n    parameters: { weight: 1, density: 0.5 }\n`,
      );
      const r = await runCli(["merge", cfg, "-o", join(dir, `out${threads}`), "--threads", threads, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /MaxListenersExceeded|memory leak/, r.stderr);
      assert.equal(r.stderr, "");
    });
  }
});

describe("the thread pool's abort listeners are removed when a task settles", () => {
  test("after each task of a fixture merge the caller's signal holds no listener, and an abort still cancels", async () => {
    const yaml = `merge_method: linear\nmodels:\n  - model: ${join(FIXTURES, "base")}\n    parameters: { weight: 1 }\n  - model: ${join(FIXTURES, "expert-add")}\n    parameters: { weight: 1 }\n`;
    const plan = await planMerge(parseMergeConfig(yaml, join(dir, "l.yml"), createDefaultRegistry()));
    const { tasks } = buildTasks(plan, { jobId: "j", seed: 0, maxShardBytes: 1e9, outDir: "discard://" });
    const ex = new LocalMergeExecutor({ threads: 2 });
    try {
      const ac = new AbortController();
      for (const t of tasks) {
        await ex.run(t, { signal: ac.signal });
        assert.equal(getEventListeners(ac.signal, "abort").length, 0);
      }
      const cancel = new AbortController();
      const running = ex.run(tasks[0], { signal: cancel.signal });
      cancel.abort();
      await assert.rejects(running, (e: Error & { code?: string }) => e.code === "CANCELLED");
      assert.equal(getEventListeners(cancel.signal, "abort").length, 0);
    } finally {
      await ex.close();
    }
  });
});
