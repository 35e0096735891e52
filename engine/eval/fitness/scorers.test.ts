import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseScorerFlag, parseScorersDocument, runScorerTask, scorerMap, scorersUsed } from "./scorers.js";

describe("scorers", () => {
  test("--scorer NAME=COMMAND splits at the first '=' and names must be subject tokens", () => {
    assert.deepEqual(parseScorerFlag("lm=python s.py --x=1 {checkpoint}"), { name: "lm", command: "python s.py --x=1 {checkpoint}", timeoutMs: 3600_000 });
    assert.throws(() => parseScorerFlag("python s.py"), /expected NAME=COMMAND/);
    assert.throws(() => parseScorerFlag("a.b=cmd"), /scorer name 'a\.b' may only use letters, digits/);
  });

  test("a scorers file maps names to commands or {command, timeout}; duplicates and unknown keys are refused", () => {
    const s = parseScorersDocument("scorers:\n  lm: python lm.py {checkpoint}\n  gsm: { command: ./gsm.sh, timeout: 90 }\n", "s.yml");
    assert.deepEqual(s, [
      { name: "lm", command: "python lm.py {checkpoint}", timeoutMs: 3600_000 },
      { name: "gsm", command: "./gsm.sh", timeoutMs: 90_000 },
    ]);
    assert.throws(
      () => parseScorersDocument("scorers:\n  gsm: { command: x, timout: 9 }\n", "s.yml"),
      /scorers\.gsm\.timout: unknown key \(valid: command, timeout\)/,
    );
    assert.throws(() => scorerMap(s, [s[0]]), /scorer 'lm' is defined twice/);
    assert.deepEqual(scorersUsed([{ kind: "scorer", scorer: "b" }, { kind: "accuracy" }, { kind: "scorer", scorer: "a" }, { kind: "scorer", scorer: "b" }]), [
      "a",
      "b",
    ]);
  });

  test("a scorer gets the checkpoint path and the worker's GPU, and its last JSON line is the score", async () => {
    const scorers = scorerMap([parseScorerFlag(`g=test {checkpoint} = "$MERGELOOM_CHECKPOINT" && echo log && echo "{\\"score\\": $CUDA_VISIBLE_DEVICES}"`)]);
    assert.equal(await runScorerTask({ name: "t", scorer: "g" }, scorers, "/tmp/ck pt", { gpu: "3" }), 3);
  });

  test("a failing scorer's error carries its stdout and stderr tails; a slow one is killed at its timeout", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mergeloom-scorer-"));
    try {
      const script = join(dir, "fail.sh");
      await writeFile(script, "echo loading model\necho 'CUDA out of memory' >&2\nexit 2\n");
      const scorers = scorerMap([parseScorerFlag(`bad=sh ${script}`), { name: "slow", command: "sleep 5", timeoutMs: 200 }]);
      await assert.rejects(
        runScorerTask({ name: "t", scorer: "bad" }, scorers, dir),
        /scorer 'bad' for task 't': exited with 2 \(stdout: loading model; stderr: CUDA out of memory\)/,
      );
      await assert.rejects(runScorerTask({ name: "t", scorer: "slow" }, scorers, dir), /scorer 'slow' for task 't': timed out after 0\.2 s and was killed/);
      await assert.rejects(
        runScorerTask({ name: "t", scorer: "nope" }, scorers, dir),
        /this process has no scorer 'nope' \(has: bad, slow\); start it with --scorer nope=COMMAND/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
