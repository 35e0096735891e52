/**
 * End to end through the built CLI on the real arith-llama checkpoints: each method writes a
 * complete HF model directory that `mergeloom eval` scores, and bad inputs fail fast with one
 * line and leave nothing behind.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "@mergeloom/engine/storage";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";
import { tinyLlamaTensors, writeFakeCheckpoint, writeRawCheckpoint } from "../harness/synthetic-checkpoint.js";

const F = (m: string) => join(FIXTURES, m);
const EVAL = join(FIXTURES, "eval");
const DATA = ["add", "sub", "mul", "rev"].map((t) => join(EVAL, `${t}.jsonl`)).join(",");

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-e2e-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(name: string, yaml: string): Promise<string> {
  const p = join(dir, `${name}.yml`);
  await writeFile(p, yaml);
  return p;
}

async function evalJson(model: string): Promise<Record<string, number>> {
  const r = await runCli(["eval", model, "--onnx", join(EVAL, "model.onnx"), "--data", DATA, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { tasks: { name: string; accuracy: number }[] };
  return Object.fromEntries(rep.tasks.map((t) => [t.name, t.accuracy]));
}

const experts = ["expert-add", "expert-sub", "expert-mul", "expert-rev"];
const modelsList = (params: string) => experts.map((e) => `  - model: ${F(e)}\n    parameters: ${params}`).join("\n");

const METHOD_CONFIGS: Record<string, { yaml: string; layers: number }> = {
  linear: { yaml: `merge_method: linear\nmodels:\n${modelsList("{ weight: 1.0 }")}\ndtype: float32\nout_dtype: bfloat16\n`, layers: 4 },
  task_arithmetic: {
    yaml: `merge_method: task_arithmetic\nbase_model: ${F("base")}\nmodels:\n${modelsList("{ weight: 1.0 }")}\nparameters: { lambda: 0.5 }\ndtype: float32\nout_dtype: bfloat16\n`,
    layers: 4,
  },
  ties: {
    yaml: `merge_method: ties\nbase_model: ${F("base")}\nmodels:\n${modelsList("{ weight: 1.0, density: 0.5 }")}\ndtype: float32\nout_dtype: bfloat16\n`,
    layers: 4,
  },
  dare_ties: {
    yaml: `merge_method: dare_ties\nbase_model: ${F("base")}\nmodels:\n${modelsList("{ weight: 0.3, density: 0.7 }")}\ndtype: float32\nout_dtype: bfloat16\n`,
    layers: 4,
  },
  passthrough: {
    yaml: `merge_method: passthrough\nslices:\n  - sources:\n      - model: ${F("expert-add")}\n        layer_range: [0, 4]\n  - sources:\n      - model: ${F("expert-sub")}\n        layer_range: [2, 4]\ndtype: bfloat16\n`,
    layers: 6,
  },
};

describe("merging the arith-llama experts from the command line", () => {
  for (const [method, { yaml, layers }] of Object.entries(METHOD_CONFIGS)) {
    test(`${method} writes a complete HF model directory that eval scores`, async () => {
      const cfg = await writeConfig(method, yaml);
      const out = join(dir, `out-${method}`);
      const r = await runCli(["merge", cfg, "-o", out, "--random-seed", "7", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const events = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      assert.equal(events.at(-1).type, "done");
      const files = await readdir(out);
      for (const f of ["model.safetensors", "config.json", "README.md", "tokenizer_config.json", "vocab.json"]) assert.ok(files.includes(f), `${f} missing`);
      assert.ok(!files.includes("model.safetensors.index.json"), "a single shard gets no index, as in mergekit");
      const ck = await openCheckpoint(out);
      assert.equal(ck.tensors.size, 3 + 9 * layers);
      assert.deepEqual(ck.tensors.get(`model.layers.${layers - 1}.mlp.down_proj.weight`)?.shape, [128, 352]);
      assert.deepEqual(ck.tensors.get("model.embed_tokens.weight")?.shape, [21, 128]);
      for (const t of ck.tensors.values()) assert.equal(t.dtype, "BF16");
      const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
      assert.equal(config.num_hidden_layers, layers);
      assert.equal(config.torch_dtype, "bfloat16");
      const card = await readFile(join(out, "README.md"), "utf8");
      assert.match(card, new RegExp(`merge_method: ${method}`));
      const acc = await evalJson(out);
      assert.deepEqual(Object.keys(acc).sort(), ["add", "mul", "rev", "sub"]);
      for (const v of Object.values(acc)) assert.ok(v >= 0 && v <= 1);
      console.log(`${method}: ${JSON.stringify(acc)}`);
    });
  }

  test("task arithmetic (lambda 0.3) of expert-add and expert-sub keeps both skills better than either expert alone", async () => {
    const cfg = await writeConfig(
      "ta-add-sub",
      `merge_method: task_arithmetic\nbase_model: ${F("base")}\nmodels:\n  - model: ${F("expert-add")}\n    parameters: { weight: 1.0 }\n  - model: ${F("expert-sub")}\n    parameters: { weight: 1.0 }\nparameters: { lambda: 0.3 }\ndtype: float32\nout_dtype: bfloat16\n`,
    );
    const out = join(dir, "out-ta-add-sub");
    const r = await runCli(["merge", cfg, "-o", out]);
    assert.equal(r.code, 0, r.stderr);
    const merged = await evalJson(out);
    const add = await evalJson(F("expert-add"));
    const sub = await evalJson(F("expert-sub"));
    console.log(`merged ${JSON.stringify(merged)} expert-add ${JSON.stringify(add)} expert-sub ${JSON.stringify(sub)}`);
    assert.ok(merged.add > sub.add, `add: merged ${merged.add} must beat expert-sub ${sub.add}`);
    assert.ok(merged.sub > add.sub, `sub: merged ${merged.sub} must beat expert-add ${add.sub}`);
  });

  test("a sharded output round-trips to the same tensors as a single-shard output", async () => {
    const cfg = await writeConfig("shard", METHOD_CONFIGS.linear.yaml);
    const one = join(dir, "out-one");
    const many = join(dir, "out-many");
    assert.equal((await runCli(["merge", cfg, "-o", one])).code, 0);
    const r = await runCli(["merge", cfg, "-o", many, "--out-shard-size", "300KB"]);
    assert.equal(r.code, 0, r.stderr);
    const index = JSON.parse(await readFile(join(many, "model.safetensors.index.json"), "utf8"));
    const shardFiles = new Set(Object.values(index.weight_map as Record<string, string>));
    assert.ok(shardFiles.size >= 5, `expected several shards, got ${shardFiles.size}`);
    for (const f of shardFiles) assert.match(f, /^model-\d{5}-of-\d{5}\.safetensors$/);
    const a = await openCheckpoint(one);
    const b = await openCheckpoint(many);
    assert.equal(
      index.metadata.total_size,
      [...b.tensors.values()].reduce((s, t) => s + t.byteLength, 0),
    );
    assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
    const bytesOf = async (uri: string, off: number, len: number) => (await readFile(uri)).subarray(off, off + len);
    for (const [name, ta] of a.tensors) {
      const tb = b.tensors.get(name)!;
      assert.ok((await bytesOf(ta.uri, ta.offset, ta.byteLength)).equals(await bytesOf(tb.uri, tb.offset, tb.byteLength)), `${name} differs`);
    }
  });

  test("vector extract writes A − B, and adding it back to B with scale 1 reproduces A", async () => {
    const vec = join(dir, "vec-add");
    let r = await runCli(["vector", "extract", F("expert-add"), "--minus", F("base"), "-o", vec]);
    assert.equal(r.code, 0, r.stderr);
    const ck = await openCheckpoint(vec);
    assert.equal(ck.tensors.get("model.norm.weight")?.dtype, "F32");
    const cfg = await writeConfig(
      "transplant",
      `merge_method: passthrough\nmodels:\n  - model: ${F("base")}\n    vectors:\n      - path: ${vec}\n        scale: 1.0\ndtype: float32\nout_dtype: bfloat16\n`,
    );
    const out = join(dir, "out-transplant");
    r = await runCli(["merge", cfg, "-o", out]);
    assert.equal(r.code, 0, r.stderr);
    const acc = await evalJson(out);
    assert.ok(acc.add > 0.9, `transplanted add vector should restore expert-add's skill, got ${acc.add}`);
  });
});

describe("bad inputs fail with one clear line and leave no output behind", () => {
  async function expectFailure(name: string, yaml: string, pattern: RegExp, flags: string[] = []): Promise<void> {
    const cfg = await writeConfig(name, yaml);
    const out = join(dir, `bad-${name}`);
    const r = await runCli(["merge", cfg, "-o", out, ...flags]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
    assert.match(lines[0], /^mergeloom: /);
    assert.match(lines[0], pattern);
    assert.equal(existsSync(out), false, "output directory must not exist");
    const leftovers = (await readdir(dir)).filter((f) => f.startsWith(`bad-${name}`));
    assert.deepEqual(leftovers, [], "no temporary directory may be left");
  }
  // One entry when a === b: a model listed twice is merged once, with a warning (as mergekit does).
  const linearOf = (a: string, b: string) =>
    `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: { weight: 1 }\n${a === b ? "" : `  - model: ${b}\n    parameters: { weight: 1 }\n`}`;

  test("a truncated safetensors file is named as truncated", async () => {
    const m = join(dir, "trunc");
    await cp(F("base"), m, { recursive: true });
    await truncate(join(m, "model.safetensors"), 700_000);
    await expectFailure("truncated", linearOf(F("base"), m), /trunc.*model\.safetensors.*truncated/);
  });

  test("a header length beyond the end of the file is refused", async () => {
    const m = await writeRawCheckpoint(join(dir, "hdrlen"), { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 4, { lengthOverride: 1_000_000n });
    await expectFailure("hdrlen", linearOf(m, m), /header length 1000000 runs past the end/);
  });

  test("overlapping tensor offsets are refused", async () => {
    const m = await writeRawCheckpoint(
      join(dir, "overlap"),
      { "model.norm.weight": { dtype: "F32", shape: [4], data_offsets: [0, 16] }, "lm_head.weight": { dtype: "F32", shape: [2, 2], data_offsets: [8, 24] } },
      24,
    );
    await expectFailure("overlap", linearOf(m, m), /overlap/);
  });

  test("an unknown dtype is refused and the known ones are listed", async () => {
    const m = await writeRawCheckpoint(join(dir, "dtype"), { "model.norm.weight": { dtype: "Q4_K", shape: [4], data_offsets: [0, 2] } }, 2);
    await expectFailure("dtype", linearOf(m, m), /unknown dtype "Q4_K" \(known: .*BF16/);
  });

  test("a shard named in the index but missing is named", async () => {
    const m = join(dir, "noshard");
    await cp(F("expert-sub"), m, { recursive: true });
    await unlink(join(m, "model-00002-of-00002.safetensors"));
    await expectFailure("noshard", linearOf(F("base"), m), /model-00002-of-00002\.safetensors/);
  });

  test("a shape mismatch between models names the tensor and both shapes", async () => {
    const a = await writeFakeCheckpoint(join(dir, "shape-a"), tinyLlamaTensors(8));
    const t = tinyLlamaTensors(8);
    t[2] = { ...t[2], shape: [12, 8] };
    const b = await writeFakeCheckpoint(join(dir, "shape-b"), t);
    await expectFailure("shape", linearOf(a, b), /up_proj\.weight: shape mismatch.*\[16, 8\].*\[12, 8\]/);
  });

  test("an unknown merge method lists the known methods", async () => {
    await expectFailure("method", `merge_method: tie\nmodels:\n  - model: ${F("base")}\n`, /unknown merge method 'tie' \(known: .*ties/);
  });

  test("with --strict, a misspelled parameter is an error suggesting the right name", async () => {
    await expectFailure("param", `merge_method: linear\nmodels:\n  - model: ${F("base")}\n    parameters: { wieght: 1.0 }\n`, /wieght.*did you mean 'weight'/, [
      "--strict",
    ]);
  });

  test("a layer_range beyond the model names the field and the model's layer count", async () => {
    await expectFailure(
      "range",
      `merge_method: passthrough\nslices:\n  - sources:\n      - model: ${F("base")}\n        layer_range: [0, 9]\n`,
      /slices\[0\]\.sources\[0\]\.layer_range.*4 layers/,
    );
  });
});
