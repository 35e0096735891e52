import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { CandidateMerger } from "./candidate-merger.js";
import { tempScratch, type CheckpointScratch } from "./checkpoint-scratch.js";
import { OnnxFitness } from "./fitness/onnx-fitness.js";
import type { FitnessSpec } from "./fitness/fitness-spec.js";
import { scoreCandidate } from "./score-candidate.js";
import { CharTokenizer, loadEvalSet } from "./eval-data.js";
import type { OnnxEvaluator } from "./onnx-evaluator.js";
import { FIXTURE, readCheckpointF32 } from "./test-weights.js";

const spec: FitnessSpec = {
  graph: join(FIXTURE, "eval/model.onnx"),
  vocab: join(FIXTURE, "base/vocab.json"),
  batchSize: 500,
  objective: "weighted",
  tasks: [{ name: "add", kind: "accuracy", data: join(FIXTURE, "eval/add.jsonl"), weight: 1, limit: 40 }],
};

const candidate = {
  id: "c1",
  seed: 0,
  mergeYaml: [
    "merge_method: linear",
    "models:",
    ...["base", "expert-add"].flatMap((m) => [`  - model: ${join(FIXTURE, m)}`, "    parameters: { weight: 0.5 }"]),
    "dtype: float32",
    "out_dtype: bfloat16",
    "",
  ].join("\n"),
};

describe("scoreCandidate on the arith-llama fixture", () => {
  const merger = new CandidateMerger();
  let fitness: OnnxFitness;
  before(async () => {
    fitness = await OnnxFitness.create(spec);
  });
  after(async () => {
    await fitness.release();
    merger.close();
  });

  test("the in-memory merge scores the same as the checkpoint `mergeloom merge` writes, read back", async () => {
    const opts = {
      tasks: spec.tasks,
      scoreWeights: (w: Parameters<OnnxFitness["score"]>[0]) => fitness.score(w),
      scratch: tempScratch("mergeloom-score-test-"),
    };
    const inMemory = await scoreCandidate(merger, candidate, opts);
    const viaDisk = await scoreCandidate(merger, candidate, { ...opts, viaDisk: true });
    assert.ok(inMemory.add > 0 && inMemory.add <= 1, JSON.stringify(inMemory));
    assert.deepEqual(viaDisk, inMemory);
  });

  test("accuracy and likelihood tasks on the same data share one teacher-forced pass and give the evaluator's numbers", async () => {
    const data = join(FIXTURE, "eval/add.jsonl");
    const both: FitnessSpec = {
      ...spec,
      tasks: [
        { name: "add", kind: "accuracy", data, weight: 1, limit: 40 },
        { name: "add-ll", kind: "likelihood", data, weight: 0.5, limit: 40 },
        { name: "add-p", kind: "likelihood", data, weight: 0.5, limit: 40, measure: "answer_prob" },
      ],
    };
    const f = await OnnxFitness.create(both);
    try {
      const ev = (f as unknown as { evaluator: OnnxEvaluator }).evaluator;
      let passes = 0;
      const tf = ev.teacherForced.bind(ev);
      ev.teacherForced = (w, s) => (passes++, tf(w, s));
      const weights = readCheckpointF32(join(FIXTURE, "expert-add"));
      const scores = await f.score(weights);
      assert.equal(passes, 1);
      const tok = await CharTokenizer.fromVocabFile(join(FIXTURE, "base/vocab.json"));
      const set = await loadEvalSet(data, tok);
      set.examples = set.examples.slice(0, 40);
      const direct = await ev.teacherForced(weights, set);
      assert.deepEqual(scores, { add: direct.accuracy, "add-ll": direct.meanLogProb, "add-p": direct.meanAnswerProb });
      assert.ok(scores["add-ll"] < 0);
      // the expected exact match when sampling lies between 0 and 1 and, for the expert on its task, near its accuracy
      assert.ok(scores["add-p"] > 0 && scores["add-p"] < 1 && Math.abs(scores["add-p"] - scores.add) < 0.15, JSON.stringify(scores));
    } finally {
      await f.release();
    }
  });

  test("a command task runs on the candidate's checkpoint in the scratch, which is removed afterwards", async () => {
    const dirs: string[] = [];
    const base = tempScratch("mergeloom-score-test-");
    const scratch: CheckpointScratch = { use: (bytes, what, fn) => base.use(bytes, what, (dir) => (dirs.push(dir), fn(dir))) };
    const tasks = [{ name: "cfg", kind: "command" as const, command: "test -f {checkpoint}/config.json && echo 0.25", weight: 1 }];
    const scores = await scoreCandidate(merger, candidate, { tasks, scoreWeights: () => assert.fail("no graph task"), scratch });
    assert.deepEqual(scores, { cfg: 0.25 });
    assert.equal(dirs.length, 1);
    assert.equal(existsSync(dirs[0]), false);
  });

  test("a plan the caller refuses fails the candidate before anything is merged or scored", async () => {
    let scored = false;
    const refuse = async () => {
      throw new Error("outside the storage roots");
    };
    const scoreWeights = async () => ((scored = true), {});
    await assert.rejects(scoreCandidate(merger, candidate, { tasks: spec.tasks, scoreWeights, checkPlan: refuse }), /outside the storage roots/);
    assert.equal(scored, false);
  });
});
