import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { evaluateModelDir } from "./evaluate-model.js";
import { MergeloomError } from "@mergeloom/proto/errors";
import { FIXTURE, readCheckpointF32 } from "./test-weights.js";

const opts = (dir: string) => ({
  weights: readCheckpointF32(join(FIXTURE, dir)),
  graphPath: join(FIXTURE, "eval/model.onnx"),
  dataFiles: ["add", "sub", "mul", "rev"].map((t) => join(FIXTURE, `eval/${t}.jsonl`)),
  vocabPath: join(FIXTURE, "base/vocab.json"),
});

test("the sharded expert-sub scores the README's 57.2/94.8/25.2/15.6 per task and their mean", async () => {
  const r = await evaluateModelDir({ ...opts("expert-sub"), batchSize: 128 });
  assert.equal(r.device, "cpu");
  assert.deepEqual(
    r.tasks.map((t) => t.name),
    ["add", "sub", "mul", "rev"],
  );
  const expected = [57.2, 94.8, 25.2, 15.6];
  r.tasks.forEach((t, i) => assert.ok(Math.abs(t.accuracy * 100 - expected[i]) <= 0.4 + 1e-9, `${t.name}: ${t.accuracy * 100}`));
  assert.ok(Math.abs(r.mean - r.tasks.reduce((a, t) => a + t.accuracy, 0) / 4) < 1e-12);
});

test("a bad data file fails before the graph is loaded, naming the file", async () => {
  await assert.rejects(
    evaluateModelDir({ ...opts("base"), dataFiles: [join(FIXTURE, "eval/add.jsonl"), join(FIXTURE, "eval/missing.jsonl")], graphPath: "/nonexistent.onnx" }),
    (err: unknown) => err instanceof MergeloomError && err.code === "EVAL_FAILED" && /missing\.jsonl/.test(err.message),
  );
});
