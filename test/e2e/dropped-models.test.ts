/**
 * A merge never exits 0 with a model silently left out. breadcrumbs keeps nothing of a task
 * vector when n_top = int(gamma·numel) is 0 (mergekit slices [n_bot:-0], which is empty): a model
 * dropped from every tensor is refused at plan time, one dropped from some is warned about.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { CandidateMerger } from "@mergeloom/engine/eval";
import { planMerge } from "@mergeloom/engine/job";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { FIXTURES } from "../harness/repo-root.js";
import { runCli } from "../harness/run-cli.js";

const F = (m: string) => join(FIXTURES, m);
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-dropped-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const config = (method: string, add: string, sub: string) =>
  `merge_method: ${method}\nbase_model: ${F("base")}\nmodels:\n` +
  `  - model: ${F("expert-add")}\n    parameters: { weight: 0.5, ${add} }\n` +
  `  - model: ${F("expert-sub")}\n    parameters: { weight: 0.5, ${sub} }\n`;
const plan = (yaml: string) => planMerge(parseMergeConfig(yaml, join(dir, "cfg.yml"), createDefaultRegistry()));

/** Tensors of the fixture whose int(gamma·numel) is 0, read from the safetensors header itself. */
function smallTensors(gamma: number): number {
  const buf = readFileSync(join(F("expert-add"), "model.safetensors"));
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString("utf8")) as Record<string, { shape?: number[] }>;
  return Object.entries(header).filter(([k, v]) => k !== "__metadata__" && Math.trunc(gamma * v.shape!.reduce((a, b) => a * b, 1)) === 0).length;
}

describe("breadcrumbs with an empty outlier mask", () => {
  for (const method of ["breadcrumbs", "breadcrumbs_ties"]) {
    test(`${method}: gamma 0 with density < 1 leaves the model out of every tensor, so the plan is refused in one line`, async () => {
      await assert.rejects(plan(config(method, "density: 0.5, gamma: 0", "density: 0.5")), (err: unknown) => {
        assert.ok(err instanceof MergeloomError, String(err));
        assert.equal(err.code, "CONFIG_INVALID");
        assert.match(err.message, /^config gamma: /);
        assert.match(err.message, new RegExp(`keeps none of model '${F("expert-add")}''s task vector in any of its \\d+ tensors`));
        assert.match(err.message, /set that model's gamma so that gamma·numel ≥ 1/);
        assert.ok(!err.message.includes("expert-sub"), "the other model is fine");
        assert.ok(!err.message.includes("\n"), "one line");
        return true;
      });
    });
  }

  test("dare_ties and della with density 0, sce with select_topk 0 and lambda 0 are refused the same way", async () => {
    const sce = `merge_method: sce\nbase_model: ${F("base")}\nparameters: { select_topk: 0 }\nmodels:\n  - model: ${F("expert-add")}\n  - model: ${F("expert-sub")}\n`;
    for (const [yaml, field] of [
      [config("dare_ties", "density: 0", "density: 0.5"), "density"],
      [config("della", "density: 0", "density: 0.5"), "density"],
      [sce, "select_topk"],
      [`${config("task_arithmetic", "density: 1", "density: 1").replace(/, density: 1/g, "")}parameters: { lambda: 0 }\n`, "lambda"],
    ] as const) {
      await assert.rejects(plan(yaml), (err: unknown) => {
        assert.ok(err instanceof MergeloomError, String(err));
        assert.equal(err.code, "CONFIG_INVALID");
        assert.match(err.message, new RegExp(`^config ${field}: \\w+ keeps none of model '${F("expert-add")}''s task vector in any of its \\d+ tensors`));
        assert.ok(!err.message.includes("\n"), "one line");
        return true;
      });
    }
  });

  test("a gamma that empties only the small tensors plans, with one warning per model naming the count", async () => {
    const expected = smallTensors(0.005);
    assert.ok(expected > 0 && expected < 39, `the fixture has ${expected} tensors under 200 elements`);
    const p = await plan(config("breadcrumbs", "density: 0.5, gamma: 0.005", "density: 0.5, gamma: 0.005"));
    const w = p.warnings.filter((m) => m.includes("keeps none of"));
    assert.equal(w.length, 2, w.join("\n"));
    for (const [i, m] of ["expert-add", "expert-sub"].entries()) assert.ok(w[i].includes(`model '${F(m)}''s task vector in ${expected} of its `), w[i]);
  });

  test("the default gamma on this fixture, gamma 0 with density 1, and other methods plan without a word", async () => {
    for (const yaml of [
      config("breadcrumbs", "density: 0.5", "density: 0.5"),
      config("breadcrumbs", "density: 1, gamma: 0", "density: 1"),
      config("ties", "density: 0.5", "density: 0.5"),
      config("dare_ties", "density: 0.01", "density: 0.5"),
    ]) {
      const p = await plan(yaml);
      assert.deepEqual(
        p.warnings.filter((m) => m.includes("keeps none of")),
        [],
      );
    }
  });

  test("an evolve candidate that leaves a model out is planned and merged (a point of the search space), with the warning", async () => {
    const merger = new CandidateMerger();
    try {
      const p = await merger.plan(merger.parse(config("dare_ties", "density: 0", "density: 0.5"), "candidate c1"));
      const w = p.warnings.filter((m) => m.includes("keeps none of"));
      assert.equal(w.length, 1, w.join("\n"));
      assert.match(w[0], new RegExp(`model '${F("expert-add")}''s task vector in (\\d+) of its \\1 tensors`));
      assert.equal((await merger.merge(p, 0)).size, p.tensors.length);
    } finally {
      merger.close();
    }
  });

  test("the CLI exits 1 with the one line and writes no output", async () => {
    const cfg = join(dir, "gamma0.yml");
    await writeFile(cfg, config("breadcrumbs", "density: 0.5", "density: 0.5, gamma: 0"));
    const out = join(dir, "out");
    const r = await runCli(["merge", cfg, "-o", out]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], new RegExp(`^mergeloom: config gamma: breadcrumbs keeps none of model '${F("expert-sub")}''s task vector`));
    assert.equal(existsSync(out), false);
  });
});
