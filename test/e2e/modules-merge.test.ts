/**
 * `modules:` configs on a stand-in two-tower checkpoint (Qwen2-VL tensor names: a text decoder
 * under model.* and lm_head, a vision tower under visual.blocks.*, a projector under
 * visual.merger.*): each module is planned with its own slices or models and parameters, and all
 * of them land in one output.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../harness/run-cli.js";
import { writeFakeCheckpoint, type FakeTensor } from "../harness/synthetic-checkpoint.js";
import { readSafetensors, type StoredTensor } from "../harness/tokenizer-fixtures.js";
import { outputShardFiles } from "../harness/output-shards.js";

const H = 4;
let dir: string;
const values = new Map<string, Map<string, number[]>>();

/** A distinct value for every (model, tensor, element), so any mix-up of layers or modules shows. */
function tensorsFor(model: number): FakeTensor[] {
  const names: [string, number[]][] = [
    ["model.embed_tokens.weight", [6, H]],
    ["model.norm.weight", [H]],
    ["lm_head.weight", [6, H]],
    ["visual.patch_embed.proj.weight", [H, H]],
    ["visual.merger.mlp.0.weight", [H, H]],
  ];
  for (let l = 0; l < 2; l++) names.push([`model.layers.${l}.self_attn.q_proj.weight`, [H, H]], [`model.layers.${l}.input_layernorm.weight`, [H]]);
  for (let b = 0; b < 3; b++) names.push([`visual.blocks.${b}.attn.qkv.weight`, [3 * H, H]], [`visual.blocks.${b}.norm1.weight`, [H]]);
  const m = new Map<string, number[]>();
  const out = names.map(([name, shape], k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = Array.from({ length: n }, (_, i) => model * 100 + k + i / 64);
    m.set(name, v);
    return { name, dtype: "F32" as const, shape, values: v };
  });
  values.set(String(model), m);
  return out;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-modules-"));
  await writeFakeCheckpoint(join(dir, "a"), tensorsFor(1), { numLayers: 2 });
  await writeFakeCheckpoint(join(dir, "b"), tensorsFor(2), { numLayers: 2 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function f32(t: StoredTensor): number[] {
  return Array.from(new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.byteLength)));
}

describe("modules: (multi-module configs)", () => {
  test("each module is merged with its own slices or models and parameters into one output", async () => {
    const a = join(dir, "a");
    const b = join(dir, "b");
    const cfg = join(dir, "modules.yml");
    await writeFile(
      cfg,
      `merge_method: linear
modules:
  text_decoder:
    slices:
      - sources: [{model: ${a}, layer_range: [0, 2]}]
      - sources: [{model: ${b}, layer_range: [1, 2]}]
  vision_tower:
    models:
      - {model: ${a}}
      - {model: ${b}, parameters: {weight: 3}}
    parameters: {weight: 1}
  multi_modal_projector:
    models:
      - {model: ${b}}
parameters: {weight: 1}
dtype: float32
`,
    );
    const out = join(dir, "out");
    const r = await runCli(["merge", cfg, "-o", out]);
    assert.equal(r.code, 0, r.stderr);
    const got = new Map<string, StoredTensor>();
    for (const f of await outputShardFiles(out)) for (const [k, v] of await readSafetensors(join(out, f))) got.set(k, v);
    const A = values.get("1")!;
    const B = values.get("2")!;
    const expect = new Map<string, number[]>([
      // Text decoder: A's layers 0-1 then B's layer 1 as layer 2; pre from the first slice, post from the last.
      ["model.embed_tokens.weight", A.get("model.embed_tokens.weight")!],
      ["model.layers.0.self_attn.q_proj.weight", A.get("model.layers.0.self_attn.q_proj.weight")!],
      ["model.layers.1.self_attn.q_proj.weight", A.get("model.layers.1.self_attn.q_proj.weight")!],
      ["model.layers.2.self_attn.q_proj.weight", B.get("model.layers.1.self_attn.q_proj.weight")!],
      ["model.layers.2.input_layernorm.weight", B.get("model.layers.1.input_layernorm.weight")!],
      ["model.norm.weight", B.get("model.norm.weight")!],
      ["lm_head.weight", B.get("lm_head.weight")!],
      ["visual.merger.mlp.0.weight", B.get("visual.merger.mlp.0.weight")!],
    ]);
    // Vision tower: (1·A + 3·B) / 4 for every tensor, the module's weight default applying to A.
    for (const name of [
      "visual.patch_embed.proj.weight",
      ...[0, 1, 2].flatMap((k) => [`visual.blocks.${k}.attn.qkv.weight`, `visual.blocks.${k}.norm1.weight`]),
    ]) {
      expect.set(
        name,
        A.get(name)!.map((x, i) => (x + 3 * B.get(name)![i]) / 4),
      );
    }
    assert.deepEqual([...got.keys()].sort(), [...expect.keys(), "model.layers.0.input_layernorm.weight", "model.layers.1.input_layernorm.weight"].sort());
    for (const [name, want] of expect) {
      const g = f32(got.get(name)!);
      g.forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= Math.abs(want[i]) * 2 ** -23, `${name}[${i}]: ${x} vs ${want[i]}`));
    }
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as { num_hidden_layers: number };
    assert.equal(config.num_hidden_layers, 3, "the text decoder's layer count");
  });

  test("a module name that matches no tensor fails at plan time naming the module", async () => {
    const cfg = join(dir, "bad.yml");
    await writeFile(cfg, `merge_method: linear\nmodules:\n  audio_tower:\n    models:\n      - {model: ${join(dir, "a")}, parameters: {weight: 1}}\n`);
    const r = await runCli(["merge", cfg, "-o", join(dir, "bad-out")]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^mergeloom: .*modules\.audio_tower: model '.*' has no tensors of module 'audio_tower'/);
  });
});
