import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { buildLlamaOnnxGraph, llamaWeightShapes, type LlamaGraphConfig } from "./llama-onnx-graph.js";
import { OnnxEvaluator, type WeightTensor } from "@mergeloom/engine/eval";
import { CharTokenizer, loadEvalSet, type EvalSet } from "@mergeloom/engine/eval";
import { MergeloomError } from "@mergeloom/proto/errors";
import { FIXTURE, readCheckpointF32 } from "@mergeloom/engine/eval";

const GRAPH = join(FIXTURE, "eval/model.onnx");
const CONFIG = JSON.parse(readFileSync(join(FIXTURE, "base/config.json"), "utf8")) as LlamaGraphConfig;
const TASKS = ["add", "sub", "mul", "rev"];

function feedsOf(w: Map<string, WeightTensor>, ids: BigInt64Array, dims: number[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", ids, dims) };
  for (const [k, v] of w) feeds[k] = new ort.Tensor("float32", v.data, v.shape as number[]);
  return feeds;
}

describe("buildLlamaOnnxGraph", () => {
  let sets: EvalSet[];
  let base: Map<string, WeightTensor>;
  let generated: OnnxEvaluator;
  let fixture: OnnxEvaluator;

  before(async () => {
    const tok = await CharTokenizer.fromVocabFile(join(FIXTURE, "base/vocab.json"));
    sets = await Promise.all(TASKS.map((t) => loadEvalSet(join(FIXTURE, `eval/${t}.jsonl`), tok)));
    base = readCheckpointF32(join(FIXTURE, "base"));
    generated = await OnnxEvaluator.create(buildLlamaOnnxGraph(CONFIG), { batchSize: 500 });
    fixture = await OnnxEvaluator.create(GRAPH, { batchSize: 500 });
  });
  after(async () => {
    await generated.release();
    await fixture.release();
  });

  test("the generated 4-layer graph takes the fixture graph's inputs with the same shapes", async () => {
    const s = await ort.InferenceSession.create(buildLlamaOnnxGraph(CONFIG));
    const f = await ort.InferenceSession.create(GRAPH);
    const shapes = (x: ort.InferenceSession) => new Map(x.inputMetadata.map((m) => [m.name, m.isTensor ? JSON.stringify([m.type, m.shape]) : ""]));
    assert.deepEqual(shapes(s), shapes(f));
    assert.deepEqual(s.outputNames, ["logits"]);
    await s.release();
    await f.release();
  });

  test("its logits equal the fixture graph's within 1e-4 on a padded mixed-length batch of real examples", async () => {
    const a = await ort.InferenceSession.create(buildLlamaOnnxGraph(CONFIG));
    const b = await ort.InferenceSession.create(GRAPH);
    const rows = sets.flatMap((s) => s.examples.slice(0, 16).map((e) => e.tokens));
    const seq = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(rows.length * seq);
    rows.forEach((r, i) => r.forEach((t, j) => (ids[i * seq + j] = BigInt(t))));
    const w = readCheckpointF32(join(FIXTURE, "expert-mul"));
    const la = (await a.run(feedsOf(w, ids, [rows.length, seq]))).logits.data as Float32Array;
    const lb = (await b.run(feedsOf(w, ids, [rows.length, seq]))).logits.data as Float32Array;
    assert.equal(la.length, rows.length * seq * 21);
    let maxDiff = 0;
    for (let i = 0; i < la.length; i++) maxDiff = Math.max(maxDiff, Math.abs(la[i] - lb[i]));
    assert.ok(maxDiff < 1e-4, `max |diff| ${maxDiff}`);
    await a.release();
    await b.release();
  });

  test("it marks as many examples correct as the fixture graph on all four tasks", async () => {
    for (const s of sets) {
      const a = await generated.accuracy(base, s);
      const b = await fixture.accuracy(base, s);
      assert.equal(a.correct, b.correct, s.name);
    }
  });

  test("a 6-layer graph runs on a frankenmerge-shaped weight set (base layers 0,1,2,1,2,3)", async () => {
    const cfg = { ...CONFIG, num_hidden_layers: 6 };
    const w = new Map<string, WeightTensor>();
    for (const [k, v] of base) if (!k.startsWith("model.layers.")) w.set(k, v);
    [0, 1, 2, 1, 2, 3].forEach((src, dst) => {
      for (const [k, v] of base) if (k.startsWith(`model.layers.${src}.`)) w.set(k.replace(`layers.${src}.`, `layers.${dst}.`), v);
    });
    assert.equal(w.size, 6 * 9 + 3);
    assert.deepEqual(new Set(llamaWeightShapes(cfg).map((x) => x.name)), new Set(w.keys()));
    const ev = await OnnxEvaluator.create(buildLlamaOnnxGraph(cfg), { batchSize: 500 });
    try {
      assert.equal(ev.inputNames().length, 57);
      const r = await ev.accuracy(w, sets[3]);
      assert.equal(r.total, 500);
      assert.ok(r.correct >= 0 && r.correct <= 500);
      // The 4-layer weights are rejected by the 6-layer graph with the first missing tensor named.
      await assert.rejects(
        ev.accuracy(base, sets[3]),
        (e: unknown) => e instanceof MergeloomError && /model\.layers\.4\.input_layernorm\.weight \[128\]/.test(e.message),
      );
    } finally {
      await ev.release();
    }
  });

  test("GQA is optional: a graph with num_key_value_heads = num_attention_heads loads and takes [128,128] k_proj", async () => {
    const cfg = { ...CONFIG, num_key_value_heads: 4, num_hidden_layers: 1 };
    const s = await ort.InferenceSession.create(buildLlamaOnnxGraph(cfg));
    const k = s.inputMetadata.find((m) => m.name === "model.layers.0.self_attn.k_proj.weight");
    assert.ok(k && k.isTensor);
    assert.deepEqual(k.shape, [128, 128]);
    await s.release();
  });

  test("an invalid config is a CONFIG_INVALID error naming the field", () => {
    assert.throws(
      () => buildLlamaOnnxGraph({ ...CONFIG, num_key_value_heads: 3 }),
      (e: unknown) =>
        e instanceof MergeloomError &&
        e.code === "CONFIG_INVALID" &&
        /num_key_value_heads: 3 must be a positive divisor of num_attention_heads \(4\)/.test(e.message),
    );
    assert.throws(
      () => buildLlamaOnnxGraph({ ...CONFIG, num_hidden_layers: 0 }),
      (e: unknown) => e instanceof MergeloomError && /num_hidden_layers/.test(e.message),
    );
  });
});
