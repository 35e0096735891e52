import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { OnnxEvaluator, argmax, entropy, logSoftmaxAt, type WeightTensor } from "./onnx-evaluator.js";
import { CharTokenizer, loadEvalSet, type EvalSet } from "./eval-data.js";
import { MergeloomError } from "@mergeloom/proto/errors";
import { FIXTURE, readCheckpointF32 } from "./test-weights.js";

const GRAPH = join(FIXTURE, "eval/model.onnx");
const TASKS = ["add", "sub", "mul", "rev"] as const;
// Fixture README "Measured accuracy" table, in percent.
const README: Record<string, number[]> = {
  base: [55.2, 44.0, 25.2, 13.2],
  "expert-add": [93.4, 46.2, 25.0, 16.0],
  "expert-sub": [57.2, 94.8, 25.2, 15.6],
  "expert-mul": [60.4, 46.0, 93.4, 14.0],
  "expert-rev": [54.4, 43.8, 24.6, 99.6],
};

function evalFailed(re: RegExp) {
  return (err: unknown) => err instanceof MergeloomError && err.code === "EVAL_FAILED" && re.test(err.message);
}

describe("OnnxEvaluator on the arith-llama fixture", () => {
  let tok: CharTokenizer;
  let sets: EvalSet[];
  let ev: OnnxEvaluator;
  const weights = new Map<string, Map<string, WeightTensor>>();

  before(async () => {
    tok = await CharTokenizer.fromVocabFile(join(FIXTURE, "base/vocab.json"));
    sets = await Promise.all(TASKS.map((t) => loadEvalSet(join(FIXTURE, `eval/${t}.jsonl`), tok)));
    ev = await OnnxEvaluator.create(GRAPH, { tokenizer: tok, batchSize: 500 });
    for (const m of Object.keys(README)) weights.set(m, readCheckpointF32(join(FIXTURE, m)));
  });
  after(async () => ev.release());

  test("the weight inputs are the 39 checkpoint tensors and input_ids is excluded", () => {
    const names = ev.inputNames();
    assert.equal(names.length, 39);
    assert.ok(!names.includes("input_ids"));
    assert.deepEqual([...names].sort(), [...weights.get("base")!.keys()].sort());
  });

  test("accuracy of base on every task and of each expert on its own task matches the README table within 0.4 points", async () => {
    for (const [model, expected] of Object.entries(README)) {
      for (let i = 0; i < TASKS.length; i++) {
        if (model !== "base" && model !== `expert-${TASKS[i]}`) continue;
        const r = await ev.accuracy(weights.get(model)!, sets[i]);
        assert.equal(r.total, 500);
        assert.equal(r.accuracy, r.correct / 500);
        assert.ok(Math.abs(r.accuracy * 100 - expected[i]) <= 0.4 + 1e-9, `${model} ${TASKS[i]}: ${r.accuracy * 100} vs README ${expected[i]}`);
      }
    }
  });

  test("the correct count does not depend on the batch size or on mixing tasks in one batch", async () => {
    const mixed: EvalSet = { name: "mixed", file: "mixed", padId: 0, examples: sets.flatMap((s) => s.examples.slice(0, 50)) };
    const small = await OnnxEvaluator.create(GRAPH, { batchSize: 7 });
    try {
      const w = weights.get("base")!;
      const a = await small.accuracy(w, mixed);
      const b = await ev.accuracy(w, mixed);
      assert.equal(a.correct, b.correct);
      let perTask = 0;
      for (const s of sets) perTask += (await ev.accuracy(w, { ...s, examples: s.examples.slice(0, 50) })).correct;
      assert.equal(b.correct, perTask);
    } finally {
      await small.release();
    }
  });

  test("the teacher-forced likelihood is ≤ 0, ranks each expert above the base on its own task, and its pass gives the same accuracy", async () => {
    const base = weights.get("base")!;
    for (let i = 0; i < TASKS.length; i++) {
      const w = weights.get(`expert-${TASKS[i]}`)!;
      const own = await ev.teacherForced(w, sets[i]);
      const b = await ev.teacherForced(base, sets[i]);
      assert.deepEqual({ correct: own.correct, total: own.total, accuracy: own.accuracy }, await ev.accuracy(w, sets[i]));
      assert.ok(own.meanLogProb < 0 && b.meanLogProb < 0, `${own.meanLogProb} ${b.meanLogProb}`);
      // the answer probability is a relaxation of exact match: within 0.15 of the accuracy for an expert on its task
      assert.ok(
        own.meanAnswerProb > 0 && own.meanAnswerProb < 1 && Math.abs(own.meanAnswerProb - own.accuracy) < 0.15,
        `${own.meanAnswerProb} vs ${own.accuracy}`,
      );
      // measured: the experts gain 0.35 (add) to 0.8 nats per answer token over the base on their own task
      assert.ok(own.meanLogProb > b.meanLogProb + 0.25, `expert-${TASKS[i]}: ${own.meanLogProb} vs base ${b.meanLogProb}`);
    }
  });

  test("an expert's answer-position entropy is lower on its own task than on the others and than the base's", async () => {
    const base = weights.get("base")!;
    for (let i = 0; i < TASKS.length; i++) {
      const w = weights.get(`expert-${TASKS[i]}`)!;
      const own = await ev.meanEntropy(w, sets[i]);
      assert.ok(own < (await ev.meanEntropy(base, sets[i])), `expert-${TASKS[i]} vs base`);
      for (let k = 0; k < TASKS.length; k++) {
        if (k !== i) assert.ok(own < (await ev.meanEntropy(w, sets[k])), `expert-${TASKS[i]} on ${TASKS[k]}`);
      }
    }
  });

  test("label-free entropy over greedy continuations of bare prompts also ranks each expert below the base on its task", async () => {
    const base = weights.get("base")!;
    for (let i = 0; i < TASKS.length; i++) {
      const prompts = sets[i].examples.slice(0, 100).map((e) => e.prompt);
      const own = await ev.meanEntropy(weights.get(`expert-${TASKS[i]}`)!, prompts);
      const b = await ev.meanEntropy(base, prompts);
      assert.ok(own > 0 && own < b, `expert-${TASKS[i]}: ${own} vs base ${b}`);
    }
  });

  test("a missing weight is an EVAL_FAILED error naming the tensor and its shape", async () => {
    const w = new Map(weights.get("base")!);
    w.delete("model.layers.2.self_attn.k_proj.weight");
    await assert.rejects(ev.accuracy(w, sets[0]), evalFailed(/missing weight tensor\(s\) model\.layers\.2\.self_attn\.k_proj\.weight \[64,128\]/));
  });

  test("a wrong-shape weight is an EVAL_FAILED error naming the tensor, its shape and the expected one", async () => {
    const w = new Map(weights.get("base")!);
    w.set("model.layers.1.mlp.up_proj.weight", { data: new Float32Array(128 * 352), shape: [128, 352] });
    await assert.rejects(
      ev.accuracy(w, sets[0]),
      evalFailed(/'model\.layers\.1\.mlp\.up_proj\.weight' has shape \[128,352\] but the graph expects \[352,128\]/),
    );
    w.set("model.layers.1.mlp.up_proj.weight", { data: new Float32Array(5), shape: [352, 128] });
    await assert.rejects(ev.accuracy(w, sets[0]), evalFailed(/has 5 values but its shape \[352,128\] needs 45056/));
  });

  test("unlabeled prompts without a tokenizer are rejected with the fix", async () => {
    const bare = await OnnxEvaluator.create(GRAPH);
    try {
      await assert.rejects(bare.meanEntropy(weights.get("base")!, ["1+2="]), evalFailed(/pass \{ tokenizer \}/));
    } finally {
      await bare.release();
    }
  });
});

describe("OnnxEvaluator devices", () => {
  test("an unknown device is rejected with the valid choices", async () => {
    await assert.rejects(OnnxEvaluator.create(GRAPH, { device: "tpu" as "cpu" }), evalFailed(/unknown device 'tpu' \(known: cpu, cuda, auto\)/));
  });

  test("auto reports cuda exactly when an explicit cuda session can be created, and cpu otherwise", async () => {
    let cudaOk = true;
    try {
      await (await OnnxEvaluator.create(GRAPH, { device: "cuda" })).release();
    } catch (err) {
      assert.ok(err instanceof MergeloomError && err.code === "EVAL_FAILED" && /CUDA execution provider is not available/.test(err.message));
      cudaOk = false;
    }
    const ev = await OnnxEvaluator.create(GRAPH, { device: "auto" });
    assert.equal(ev.device, cudaOk ? "cuda" : "cpu");
    await ev.release();
  });
});

describe("logit helpers", () => {
  test("argmax takes the first maximal index like numpy", () => {
    assert.equal(argmax(new Float32Array([9, 1, 3, 3, 2]), 1, 4), 1);
    assert.equal(argmax(new Float32Array([0, 5, 5]), 0, 3), 1);
  });

  test("logSoftmaxAt is −ln(n) for equal logits, ln 3/4 for [0, ln 3] at 1, and stable for large logits", () => {
    assert.ok(Math.abs(logSoftmaxAt(new Float32Array(21).fill(7), 0, 21, 4) + Math.log(21)) < 1e-12);
    assert.ok(Math.abs(logSoftmaxAt(new Float32Array([9, 0, Math.log(3)]), 1, 2, 1) - Math.log(0.75)) < 1e-6);
    assert.ok(Math.abs(logSoftmaxAt(new Float32Array([1000, 1000]), 0, 2, 0) - Math.log(0.5)) < 1e-12);
  });

  test("entropy is ln(n) for equal logits and matches a hand computation for [0, ln 3]", () => {
    assert.ok(Math.abs(entropy(new Float32Array(21).fill(7), 0, 21) - Math.log(21)) < 1e-12);
    // softmax([0, ln 3]) = [1/4, 3/4]; H = -(1/4 ln 1/4 + 3/4 ln 3/4)
    const h = -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75));
    assert.ok(Math.abs(entropy(new Float32Array([0, Math.log(3)]), 0, 2) - h) < 1e-6);
  });
});
