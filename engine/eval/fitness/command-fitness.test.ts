import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseScore, runScoreCommand } from "./command-fitness.js";
import { combineScores } from "./fitness-spec.js";

describe("command fitness", () => {
  test("the last JSON line of stdout is the score, read at the key when it is an object", () => {
    assert.equal(parseScore('loading...\n{"score": 0.25}\n', "score"), 0.25);
    assert.equal(parseScore('{"acc": 0.1}\n0.75\n', "score"), 0.75);
    assert.equal(parseScore('{"acc": 0.5, "x": 1}', "acc"), 0.5);
    assert.throws(() => parseScore("no json here", "score"), /no JSON score/);
    assert.throws(() => parseScore('{"acc": 1}', "score"), /no numeric field 'score'/);
  });

  test("the command sees the checkpoint path as an argument and in MERGELOOM_CHECKPOINT", async () => {
    const s = await runScoreCommand(`test {checkpoint} = "$MERGELOOM_CHECKPOINT" && echo '{"score": 3.5}'`, "/tmp/it's here");
    assert.equal(s, 3.5);
  });

  test("a failing command rejects with its exit code", async () => {
    await assert.rejects(runScoreCommand("echo oops >&2; exit 3", "/tmp/x"), /exited with 3 \(stderr: oops\)/);
  });

  test("scores combine as their weighted mean and a missing score gives NaN", () => {
    const tasks = [
      { name: "a", kind: "accuracy" as const, weight: 1 },
      { name: "b", kind: "accuracy" as const, weight: 3 },
    ];
    assert.equal(combineScores({ a: 0.2, b: 0.6 }, tasks), (1 * 0.2 + 3 * 0.6) / 4);
    assert.ok(Number.isNaN(combineScores({ a: 0.2 }, tasks)));
  });
});
