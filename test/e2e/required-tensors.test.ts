/**
 * Every model that contributes to a tensor must hold it (mergekit: "Tensor X required but not
 * present in model Y"), and only float tensors are merged: both are refused at plan time, from
 * headers, naming the tensor, the model and the file. Cases from issue 9 items 3 and 4.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { planMerge } from "@mergeloom/engine/job";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { FIXTURES } from "../harness/repo-root.js";
import { rewriteCheckpoint, type RawTensor } from "../harness/rewrite-checkpoint.js";
import { runCli } from "../harness/run-cli.js";
import { writeRawCheckpoint } from "../harness/synthetic-checkpoint.js";

const F = (m: string) => join(FIXTURES, m);
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-required-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const plan = (yaml: string) => planMerge(parseMergeConfig(yaml, join(dir, "cfg.yml"), createDefaultRegistry()));

/** The four config shapes every defect is tried in: linear and TIES, models: and slices: syntax. */
function configs(good: string, bad: string): Record<string, string> {
  return {
    "linear, models": `merge_method: linear\nmodels:\n  - model: ${good}\n    parameters: { weight: 1 }\n  - model: ${bad}\n    parameters: { weight: 1 }\n`,
    "linear, slices": `merge_method: linear\nslices:\n  - sources:\n      - model: ${good}\n        layer_range: [0, 4]\n        parameters: { weight: 1 }\n      - model: ${bad}\n        layer_range: [0, 4]\n        parameters: { weight: 1 }\n`,
    "ties, models": `merge_method: ties\nbase_model: ${good}\nmodels:\n  - model: ${F("expert-mul")}\n    parameters: { weight: 1, density: 0.5 }\n  - model: ${bad}\n    parameters: { weight: 1, density: 0.5 }\n`,
    "ties, slices": `merge_method: ties\nbase_model: ${good}\nslices:\n  - sources:\n      - model: ${good}\n        layer_range: [0, 4]\n      - model: ${bad}\n        layer_range: [0, 4]\n        parameters: { weight: 1, density: 0.5 }\n`,
  };
}

async function expectPlanError(yaml: string, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(plan(yaml), (err: unknown) => {
    assert.ok(err instanceof MergeloomError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"), "one line");
    return true;
  });
}

const keep = (drop: (name: string) => boolean) => (ts: RawTensor[]) => ts.filter((t) => !drop(t.name));

describe("a model that lacks a tensor another model has is refused at plan time", () => {
  const cases: Array<{ what: string; make: (d: string) => Promise<string>; pattern: (d: string) => RegExp }> = [
    {
      what: "a header {} (no tensors at all)",
      make: async (d) => writeRawCheckpoint(d, {}, 0),
      pattern: (d) => new RegExp(`model '${d}' \\(${d}/model\\.safetensors\\) holds no tensors`),
    },
    {
      what: "a model without layers 2-3 whose config.json says 4",
      make: (d) =>
        rewriteCheckpoint(
          F("expert-add"),
          d,
          keep((n) => /layers\.[23]\./.test(n)),
        ),
      pattern: (d) => new RegExp(`model '${d}' \\(${d}/model\\.safetensors\\) has no tensors for layer 2, but its config\\.json says 4 layers`),
    },
    {
      what: "a model without MLP tensors",
      make: (d) =>
        rewriteCheckpoint(
          F("expert-add"),
          d,
          keep((n) => n.includes(".mlp.")),
        ),
      pattern: (d) =>
        new RegExp(`tensor 'model\\.layers\\.0\\.mlp\\.\\w+_proj\\.weight' required but not present in model '${d}' \\(${d}/model\\.safetensors\\)`),
    },
    {
      what: "a renamed tensor (q0proj)",
      make: (d) =>
        rewriteCheckpoint(F("expert-add"), d, (ts) =>
          ts.map((t) => (t.name === "model.layers.1.self_attn.q_proj.weight" ? { ...t, name: "model.layers.1.self_attn.q0proj.weight" } : t)),
        ),
      pattern: (d) => new RegExp(`model\\.layers\\.1\\.self_attn\\.q(0)?_?proj\\.weight' required but not present in model '(${d}|[^']+)'`),
    },
  ];
  cases.forEach((c, ci) => {
    Object.keys(configs("G", "B")).forEach((shape, si) => {
      test(`${c.what} — ${shape}`, async () => {
        // Short paths: error messages cap echoed values at 80 characters.
        const bad = await c.make(join(dir, `c${ci}-${si}`));
        await expectPlanError(configs(F("base"), bad)[shape], "CHECKPOINT_MISSING", c.pattern(bad));
      });
    });
  });

  test("the renamed tensor is also reported when it is the first model that has it", async () => {
    const bad = await rewriteCheckpoint(F("expert-add"), join(dir, "renamed-first"), (ts) =>
      ts.map((t) => (t.name === "model.layers.1.self_attn.q_proj.weight" ? { ...t, name: "model.layers.1.self_attn.q0proj.weight" } : t)),
    );
    await expectPlanError(configs(bad, F("base"))["linear, models"], "CHECKPOINT_MISSING", /required but not present in model/);
  });

  test("through the CLI: one line, non-zero exit, no output directory", async () => {
    const bad = await rewriteCheckpoint(
      F("expert-add"),
      join(dir, "cli-mlp"),
      keep((n) => n === "model.layers.3.mlp.down_proj.weight"),
    );
    const cfg = join(dir, "cli.yml");
    await writeFile(cfg, configs(F("base"), bad)["ties, models"]);
    const out = join(dir, "cli-out");
    for (const cmd of [
      ["plan", cfg],
      ["merge", cfg, "-o", out],
    ]) {
      const r = await runCli(cmd);
      assert.notEqual(r.code, 0);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0],
        /^mergeloom: plan model\.layers\.3\.mlp\.down_proj\.weight: tensor 'model\.layers\.3\.mlp\.down_proj\.weight' required but not present in model '.*cli-mlp' \(.*cli-mlp\/model\.safetensors\)/,
      );
    }
    assert.equal(existsSync(out), false);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.startsWith("cli-out")),
      [],
    );
  });
});

describe("optional tensors may be absent, as in mergekit's architecture files", () => {
  test("a model without lm_head uses its embeddings (tied) and, with tie_word_embeddings false, says so in a warning", async () => {
    const tied = await rewriteCheckpoint(
      F("expert-add"),
      join(dir, "no-head"),
      keep((n) => n === "lm_head.weight"),
    );
    const p = await plan(configs(F("base"), tied)["linear, models"]);
    const head = p.tensors.find((t) => t.name === "lm_head.weight")!;
    assert.deepEqual(
      head.inputs.map((i) => i.source.tensor),
      ["lm_head.weight", "model.embed_tokens.weight"],
    );
    assert.equal(p.warnings.length, 1);
    assert.match(p.warnings[0], /model '.*no-head' has no lm_head\.weight although its config\.json sets tie_word_embeddings: false/);
  });

  test("with tie_word_embeddings true there is no warning", async () => {
    const tied = await rewriteCheckpoint(
      F("expert-add"),
      join(dir, "no-head-tied"),
      keep((n) => n === "lm_head.weight"),
      (c) => ({ ...c, tie_word_embeddings: true }),
    );
    const p = await plan(configs(F("base"), tied)["linear, models"]);
    assert.deepEqual(p.warnings, []);
  });

  test("a rotary inv_freq cache only one model carries is merged from that model alone", async () => {
    const extra = await rewriteCheckpoint(F("expert-add"), join(dir, "inv-freq"), (ts) => [
      ...ts,
      { name: "model.layers.0.self_attn.rotary_emb.inv_freq", dtype: "F32", shape: [16], data: Buffer.from(new Float32Array(16).fill(0.5).buffer) },
    ]);
    const p = await plan(configs(F("base"), extra)["linear, models"]);
    const t = p.tensors.find((x) => x.name === "model.layers.0.self_attn.rotary_emb.inv_freq")!;
    assert.deepEqual(
      t.inputs.map((i) => i.model),
      [extra],
    );
  });

  test("identical complete models plan without errors or warnings", async () => {
    const p = await plan(configs(F("base"), F("expert-add"))["ties, slices"]);
    assert.equal(p.tensors.length, 39);
    assert.deepEqual(p.warnings, []);
  });
});

describe("a tensor whose dtype is not a float type is refused when it would be merged", () => {
  const retype = (name: string, dtype: "I16" | "I32" | "BOOL" | "U8" | "I8" | "I64") => (ts: RawTensor[]) =>
    ts.map((t) => {
      if (t.name !== name) return t;
      const n = t.shape.reduce((a, b) => a * b, 1);
      const size = { I16: 2, I32: 4, BOOL: 1, U8: 1, I8: 1, I64: 8 }[dtype];
      return { ...t, dtype, data: Buffer.alloc(n * size, 1) };
    });
  for (const dtype of ["I16", "I32", "BOOL", "U8"] as const) {
    for (const shape of ["linear, models", "ties, slices"]) {
      test(`${dtype} in one model — ${shape}`, async () => {
        const bad = await rewriteCheckpoint(F("expert-add"), join(dir, `dt-${dtype}-${shape.replace(/\W+/g, "-")}`), retype("model.norm.weight", dtype));
        await expectPlanError(
          configs(F("base"), bad)[shape],
          "CHECKPOINT_INVALID",
          new RegExp(
            `plan model\\.norm\\.weight: tensor 'model\\.norm\\.weight' of model '${bad}' \\(${bad}/model\\.safetensors\\) has dtype ${dtype}, which cannot be merged`,
          ),
        );
      });
    }
  }

  test("a passthrough of one model copies an integer tensor unchanged (mergekit keeps it too)", async () => {
    const ints = await rewriteCheckpoint(F("expert-add"), join(dir, "dt-pass"), retype("model.norm.weight", "I32"));
    const p = await plan(`merge_method: passthrough\nslices:\n  - sources:\n      - model: ${ints}\n        layer_range: [0, 4]\n`);
    const t = p.tensors.find((x) => x.name === "model.norm.weight")!;
    assert.equal(t.outDtype, "I32");
  });

  test("a passthrough that scales an integer tensor is refused", async () => {
    const ints = await rewriteCheckpoint(F("expert-add"), join(dir, "dt-pass-scale"), retype("model.norm.weight", "I8"));
    await expectPlanError(
      `merge_method: passthrough\nslices:\n  - sources:\n      - model: ${ints}\n        layer_range: [0, 4]\n        parameters: { scale: 2 }\n`,
      "CHECKPOINT_INVALID",
      /has dtype I8, which cannot be merged/,
    );
  });
});
