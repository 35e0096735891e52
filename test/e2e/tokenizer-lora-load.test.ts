/**
 * The outputs load in the real consumer: a union-tokenizer merge and a LoRA-applied merge open
 * with transformers' AutoModelForCausalLM and AutoTokenizer (Python venv, see
 * scripts/install-test-deps.sh); the tokenizer encodes a sample as the union vocabulary says;
 * the LoRA merge equals PEFT's merge_and_unload; and the logits equal those of the ONNX graph
 * that `mergeloom eval` runs, fed the same merged weights, within bf16 tolerance.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as ort from "onnxruntime-node";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES, REPO_ROOT } from "../harness/repo-root.js";
import { venvPython } from "../harness/python-venv.js";
import { writeLoraAdapter } from "../harness/lora-fixtures.js";
import { readSafetensors, writeUnionFixture, type StoredTensor } from "../harness/tokenizer-fixtures.js";
import { outputShardFiles } from "../harness/output-shards.js";

const run = promisify(execFile);
const SCRIPT = join(REPO_ROOT, "test", "reference", "check_tokenizer_lora_load.py");
let dir: string;
let python: string;
before(async () => {
  python = venvPython();
  dir = await mkdtemp(join(tmpdir(), "mergeloom-load-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function py(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(python, [SCRIPT, ...args], {
    maxBuffer: 64 << 20,
    env: { ...process.env, HF_HUB_OFFLINE: "1", TRANSFORMERS_VERBOSITY: "error" },
  });
  return JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, unknown>;
}

async function mergeCli(name: string, yaml: string): Promise<string> {
  const cfg = join(dir, `${name}.yml`);
  await writeFile(cfg, yaml);
  const out = join(dir, name);
  const r = await runCli(["merge", cfg, "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

function toF32(t: StoredTensor, rows?: number): Float32Array {
  const n = rows === undefined ? t.shape.reduce((a, b) => a * b, 1) : rows * t.shape[1];
  if (t.dtype === "F32") return new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + n * 4));
  const bits = new Uint16Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + n * 2));
  const u32 = new Uint32Array(n);
  for (let i = 0; i < n; i++) u32[i] = bits[i] << 16;
  return new Float32Array(u32.buffer);
}

/** Logits of the evaluation graph (`mergeloom eval`'s) for `ids`, its embedding rows cropped to the graph's 21-token vocabulary. */
async function onnxLogits(out: string, ids: number[]): Promise<number[][]> {
  const tensors = new Map<string, StoredTensor>();
  for (const f of await outputShardFiles(out)) for (const [k, v] of await readSafetensors(join(out, f))) tensors.set(k, v);
  const session = await ort.InferenceSession.create(join(FIXTURES, "eval", "model.onnx"));
  try {
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) };
    for (const name of session.inputNames) {
      if (name === "input_ids") continue;
      const t = tensors.get(name)!;
      const crop = /embed_tokens|lm_head/.test(name) ? 21 : undefined;
      feeds[name] = new ort.Tensor("float32", toF32(t, crop), crop ? [crop, t.shape[1]] : t.shape);
    }
    const res = await session.run(feeds);
    const data = res.logits.data as Float32Array;
    const vocab = res.logits.dims[2];
    return ids.map((_, i) => Array.from(data.subarray(i * vocab, (i + 1) * vocab)));
  } finally {
    await session.release();
  }
}

function assertLogitsClose(got: number[][], want: number[][], what: string): void {
  const scale = Math.max(...want.flat().map(Math.abs));
  for (let i = 0; i < want.length; i++) {
    for (let j = 0; j < want[i].length; j++) {
      assert.ok(Math.abs(got[i][j] - want[i][j]) <= scale * 2 ** -8, `${what} [${i}, ${j}]: ${got[i][j]} vs ${want[i][j]}`);
    }
  }
}

describe("merged outputs load in transformers", () => {
  test("a union-tokenizer merge loads with AutoTokenizer/AutoModelForCausalLM, encodes added tokens with their union ids, and its logits match the eval graph's", async () => {
    const fx = await writeUnionFixture(join(dir, "fx"));
    const out = await mergeCli(
      "union",
      `merge_method: linear\nbase_model: ${fx.base}\nmodels:\n  - {model: ${fx.base}, parameters: {weight: 1}}\n  - {model: ${fx.chat}, parameters: {weight: 1}}\n  - {model: ${fx.tool}, parameters: {weight: 2}}\ntokenizer: {source: union, pad_to_multiple_of: 16}\ndtype: bfloat16\n`,
    );
    const sample = await py("union", out, "1+2=<|im_start|>3<tool>");
    // Union definition: characters keep the base ids, <|im_start|> = 21 (chat's first added token), <tool> = 23.
    assert.deepEqual(sample.ids, [4, 13, 5, 16, 21, 6, 23]);
    assert.equal(sample.vocab, 24);
    assert.deepEqual(sample.logits_shape, [7, 32]);
    const plain = await py("union", out, "1+2=3");
    const ids = plain.ids as number[];
    assert.deepEqual(ids, [4, 13, 5, 16, 6]);
    const hf = (plain.logits as number[][]).map((r) => r.slice(0, 21));
    assertLogitsClose(hf, await onnxLogits(out, ids), "union logits");
  });

  test("a LoRA-applied merge equals PEFT's merge_and_unload and its logits match the eval graph's", async () => {
    const adapter = await writeLoraAdapter(join(dir, "adapter"), { rslora: true });
    const out = await mergeCli(
      "lora",
      `merge_method: passthrough\nmodels:\n  - model: ${join(FIXTURES, "base")}+${adapter.dir}\ndtype: float32\nout_dtype: float32\n`,
    );
    const r = await py("lora", join(FIXTURES, "base"), adapter.dir, out);
    assert.equal(r.tensors, 39);
    assert.ok((r.max_abs_diff as number) <= 1e-6, `weights differ from PEFT's by ${r.max_abs_diff}`);
    assert.ok((r.logits_max_abs_diff as number) <= 1e-4, `logits differ from PEFT's by ${r.logits_max_abs_diff}`);
    const ids = [1, 4, 13, 5, 16];
    assertLogitsClose(r.logits as number[][], await onnxLogits(out, ids), "lora logits");
  });
});
