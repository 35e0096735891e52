/**
 * Outputs load in the real consumer: merged models are loaded with transformers'
 * AutoModelForCausalLM (torch, CPU) from `.venv-test`, and their logits must equal the logits of
 * the ONNX graph `mergeloom eval` scores them with (fixture's eval/model.onnx for 4 layers, the
 * generated graph of coordinator/evolve/dfs/llama-onnx-graph.ts for the 6-layer frankenmerge), fed the
 * merged weights exactly as `mergeloom eval` feeds them. AutoTokenizer must load a merged
 * tokenizer and encode a sample as the tokenizer's own definition says.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { buildLlamaOnnxGraph, type LlamaGraphConfig } from "@mergeloom/coordinator/evolve";
import { CharTokenizer, loadEvalSet } from "@mergeloom/engine/eval";
import { readCheckpointF32 } from "@mergeloom/engine/eval";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES, REPO_ROOT } from "../harness/repo-root.js";
import { runPython } from "../harness/python-venv.js";
import { writeStandIn } from "../harness/stand-in-checkpoints.js";

/**
 * One Python process for every check (importing torch and transformers costs ~10 s): for each
 * job, AutoModelForCausalLM in fp32 and its logits on the given rows; with a sample, AutoTokenizer's
 * ids for it.
 */
const CONSUMER_PY = `
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
results = []
for job in json.loads(sys.argv[1]):
    model = AutoModelForCausalLM.from_pretrained(job["dir"], dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(job["rows"], dtype=torch.long)).logits
    r = {"layers": model.config.num_hidden_layers, "class": type(model).__name__, "shape": list(logits.shape), "logits": logits.flatten().tolist()}
    if "sample" in job:
        tok = AutoTokenizer.from_pretrained(job["dir"])
        r["ids"] = tok(job["sample"], add_special_tokens=False)["input_ids"]
        r["chat"] = tok.apply_chat_template(job["chat"], tokenize=False)
    results.append(r)
print(json.dumps(results))
`;

interface ConsumerResult {
  layers: number;
  class: string;
  shape: number[];
  logits: number[];
  ids?: number[];
  chat?: string;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-hf-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Eight real eval examples of one length (no padding, so every position is comparable). */
async function sampleRows(): Promise<number[][]> {
  const tok = await CharTokenizer.fromVocabFile(join(FIXTURES, "base", "vocab.json"));
  const set = await loadEvalSet(join(FIXTURES, "eval", "add.jsonl"), tok);
  const len = set.examples[0].tokens.length;
  return set.examples
    .filter((e) => e.tokens.length === len)
    .slice(0, 8)
    .map((e) => [...e.tokens]);
}

/** The logits `mergeloom eval` computes: the merged weights as fp32 inputs of the ONNX graph. */
async function onnxLogits(graph: string | Uint8Array, modelDir: string, rows: number[][]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(graph as Uint8Array);
  try {
    const seq = rows[0].length;
    const ids = new BigInt64Array(rows.length * seq);
    rows.forEach((r, i) => r.forEach((t, j) => (ids[i * seq + j] = BigInt(t))));
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", ids, [rows.length, seq]) };
    for (const [name, t] of readCheckpointF32(modelDir)) feeds[name] = new ort.Tensor("float32", t.data, t.shape as number[]);
    return (await session.run(feeds)).logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** bf16 tolerance: 2^-8 of the largest logit (both sides compute in fp32 from the same bf16 weights). */
function assertClose(hf: number[], onnx: Float32Array, what: string): void {
  assert.equal(hf.length, onnx.length, `${what}: logits count`);
  let scale = 1;
  for (const v of onnx) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < hf.length; i++) worst = Math.max(worst, Math.abs(hf[i] - onnx[i]));
  assert.ok(worst <= scale / 256, `${what}: max |transformers − onnx| = ${worst} > ${scale / 256}`);
}

describe("merged outputs in transformers", () => {
  const EXAMPLES = [
    { example: "ties-arith.yml", layers: 4, graph: () => join(FIXTURES, "eval", "model.onnx") as string | Uint8Array },
    { example: "frankenmerge.yml", layers: 6, graph: (cfg: LlamaGraphConfig) => buildLlamaOnnxGraph(cfg) as string | Uint8Array },
  ];
  const SAMPLE = "w3 w17 w31 w4 unknown";
  const CHAT = [
    { role: "system", content: "Be nice." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello!" },
    { role: "user", content: "Bye" },
  ];
  let rows: number[][];
  let results: ConsumerResult[];
  let tokOut: string;

  before(async () => {
    rows = await sampleRows();
    for (const { example } of EXAMPLES) {
      const r = await runCli(["merge", join(REPO_ROOT, "examples", example), join(dir, example)]);
      assert.equal(r.code, 0, r.stderr);
    }
    const a = join(dir, "tok-a");
    const b = join(dir, "tok-b");
    await writeStandIn(a, { arch: "mistral", layers: 2 }, 11);
    await writeStandIn(b, { arch: "mistral", layers: 2 }, 12);
    const cfg = join(dir, "tok.yml");
    await writeFile(
      cfg,
      `models:\n  - model: ${a}\n    parameters: {weight: 0.5}\n  - model: ${b}\n    parameters: {weight: 0.5}\nmerge_method: linear\ndtype: bfloat16\nchat_template: mistral\n`,
    );
    tokOut = join(dir, "tok-out");
    const r = await runCli(["merge", cfg, tokOut]);
    assert.equal(r.code, 0, r.stderr);
    const jobs = [
      ...EXAMPLES.map(({ example }) => ({ dir: join(dir, example), rows })),
      { dir: tokOut, rows: [[1, 3, 17, 31, 4, 2]], sample: SAMPLE, chat: CHAT },
    ];
    results = JSON.parse(await runPython(CONSUMER_PY, [JSON.stringify(jobs)])) as ConsumerResult[];
  });

  EXAMPLES.forEach(({ example, layers, graph }, i) => {
    test(`examples/${example} (${layers} layers) loads with AutoModelForCausalLM and its logits equal mergeloom eval's ONNX logits`, async () => {
      const out = join(dir, example);
      const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as LlamaGraphConfig;
      assert.equal(config.num_hidden_layers, layers);
      const hf = results[i];
      assert.equal(hf.class, "LlamaForCausalLM");
      assert.equal(hf.layers, layers);
      assert.deepEqual(hf.shape, [rows.length, rows[0].length, config.vocab_size]);
      assertClose(hf.logits, await onnxLogits(graph(config), out, rows), example);
    });
  });

  test("a merged word-level tokenizer loads with AutoTokenizer, encodes a sample as its vocabulary says and renders mergekit's mistral template", () => {
    const vocab = (JSON.parse(readFileSync(join(tokOut, "tokenizer.json"), "utf8")) as { model: { vocab: Record<string, number> } }).model.vocab;
    const want = SAMPLE.split(" ").map((w) => vocab[w] ?? vocab["<unk>"]);
    const got = results[EXAMPLES.length];
    assert.deepEqual(got.ids, want);
    assert.equal(got.class, "MistralForCausalLM");
    assert.equal(got.layers, 2);
    // Mistral's instruct format (system text joined to the first user turn), as mergekit's template renders it.
    assert.equal(got.chat, "<s> [INST] Be nice.\n\nHi [/INST] Hello!</s> [INST] Bye [/INST]");
  });
});
