/**
 * `model+adapter` references through the CLI: the PEFT adapter's deltas are added as the base
 * fixture's tensors load. Every changed tensor is checked against W + scale·B·A computed here in
 * float64 from the stored bytes (scale alpha/r, alpha/sqrt(r) with rsLoRA, rank_pattern and
 * alpha_pattern per module, embeddings transposed), lm_head is the adapter's saved module, and
 * the o_proj pair outside target_modules is ignored with a warning, as PEFT ignores it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";
import { expectedLora, writeLoraAdapter, type LoraFixture } from "../harness/lora-fixtures.js";
import { readSafetensors, type StoredTensor } from "../harness/tokenizer-fixtures.js";
import { outputShardFiles } from "../harness/output-shards.js";

let dir: string;
let base: Map<string, StoredTensor>;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-lora-"));
  base = await readSafetensors(join(FIXTURES, "base", "model.safetensors"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function decode(t: StoredTensor): Float64Array {
  if (t.dtype === "F32") return Float64Array.from(new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.byteLength)));
  const bits = new Uint16Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.byteLength));
  const u32 = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i] << 16;
  return Float64Array.from(new Float32Array(u32.buffer));
}

async function mergeWith(name: string, adapter: LoraFixture): Promise<{ tensors: Map<string, StoredTensor>; stderr: string }> {
  const cfg = join(dir, `${name}.yml`);
  await writeFile(cfg, `merge_method: passthrough\nmodels:\n  - model: ${join(FIXTURES, "base")}+${adapter.dir}\ndtype: float32\nout_dtype: float32\n`);
  const out = join(dir, name);
  const r = await runCli(["merge", cfg, "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  const tensors = new Map<string, StoredTensor>();
  for (const file of await outputShardFiles(out)) for (const [k, v] of await readSafetensors(join(out, file))) tensors.set(k, v);
  return { tensors, stderr: r.stderr };
}

/** fp32 output: the scale, the delta and the sum are each rounded (2^-24 relative), so errors scale with |W| + |delta|. */
function assertClose(got: Float64Array, want: Float64Array, w: Float64Array, what: string): void {
  assert.equal(got.length, want.length, what);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const size = Math.abs(w[i]) + Math.abs(want[i] - w[i]);
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / size);
  }
  assert.ok(worst <= 2 ** -22, `${what}: worst error ${worst} of |W| + |delta|`);
}

describe("LoRA adapters (model+adapter)", () => {
  for (const rslora of [false, true]) {
    test(`the merged weights equal W + scale·B·A in float64${rslora ? " with rsLoRA's alpha/sqrt(r)" : ""}, per-module ranks and alphas, embeddings transposed`, async () => {
      const adapter = await writeLoraAdapter(join(dir, `adapter-${rslora}`), { rslora });
      const { tensors, stderr } = await mergeWith(`merged-${rslora}`, adapter);
      const P = "base_model.model.";
      const scaleOf = (alpha: number, r: number) => (rslora ? alpha / Math.sqrt(r) : alpha / r);
      for (let l = 0; l < 4; l++) {
        for (const [proj, r, alpha] of [
          ["q_proj", 4, l === 1 ? 16 : 8],
          ["v_proj", 2, 8],
        ] as const) {
          const name = `model.layers.${l}.self_attn.${proj}.weight`;
          const w = base.get(name)!;
          const a = adapter.tensors.get(`${P}model.layers.${l}.self_attn.${proj}.lora_A.weight`)!;
          const b = adapter.tensors.get(`${P}model.layers.${l}.self_attn.${proj}.lora_B.weight`)!;
          assertClose(decode(tensors.get(name)!), expectedLora(w, decode(w), a, b, scaleOf(alpha, r), false), decode(w), name);
        }
      }
      const emb = "model.embed_tokens.weight";
      const ew = base.get(emb)!;
      assertClose(
        decode(tensors.get(emb)!),
        expectedLora(
          ew,
          decode(ew),
          adapter.tensors.get(`${P}model.embed_tokens.lora_embedding_A`)!,
          adapter.tensors.get(`${P}model.embed_tokens.lora_embedding_B`)!,
          scaleOf(8, 4),
          true,
        ),
        decode(ew),
        emb,
      );
      assert.deepEqual(
        decode(tensors.get("lm_head.weight")!),
        Float64Array.from(adapter.tensors.get(`${P}lm_head.weight`)!.values),
        "lm_head is the saved module",
      );
      const o = "model.layers.0.self_attn.o_proj.weight";
      assert.deepEqual(decode(tensors.get(o)!), decode(base.get(o)!), "o_proj is outside target_modules and stays as stored");
      assert.match(stderr, /warning: adapter '.*': 'model\.layers\.0\.self_attn\.o_proj' is not in target_modules/);
    });
  }

  test("the long form {model: {path}, lora: {path}} is the same reference", async () => {
    const adapter = await writeLoraAdapter(join(dir, "adapter-long"));
    const cfg = join(dir, "long.yml");
    await writeFile(
      cfg,
      `merge_method: passthrough\nmodels:\n  - model: {model: {path: ${join(FIXTURES, "base")}}, lora: {path: ${adapter.dir}}}\ndtype: float32\n`,
    );
    const r = await runCli(["merge", cfg, "-o", join(dir, "long")]);
    assert.equal(r.code, 0, r.stderr);
    const short = await mergeWith("short", adapter);
    const long = await readSafetensors(join(dir, "long", "model-00001-of-00001.safetensors")).catch(async () =>
      readSafetensors(join(dir, "long", "model.safetensors")),
    );
    const q = "model.layers.2.self_attn.q_proj.weight";
    assert.ok(long.get(q)!.bytes.equals(short.tensors.get(q)!.bytes));
  });

  test("an adapter directory without adapter_config.json fails at plan time naming it", async () => {
    const cfg = join(dir, "bad.yml");
    await writeFile(cfg, `merge_method: passthrough\nmodels:\n  - model: ${join(FIXTURES, "base")}+${join(FIXTURES, "expert-add")}\n`);
    const r = await runCli(["merge", cfg, "-o", join(dir, "bad")]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^mergeloom: .*expert-add: no adapter_config\.json; a LoRA reference \(model\+adapter\) must name a PEFT adapter directory$/);
  });
});
