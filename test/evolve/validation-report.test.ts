// The search loop with a validation split: validation is scored (every candidate with `every:
// all`, each new best with `best`) and reported — curve, gap, rank correlation — but the best is
// the fitness-selected candidate even where validation prefers another. The evaluators here are
// plain functions of the genotype (the loop is under test, not the merge).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIXTURES } from "../harness/repo-root.js";
import type { Candidate, CandidateEvaluator, CandidateResult } from "@mergeloom/coordinator/evolve";
import { runEvolve } from "@mergeloom/coordinator/evolve";
import { parseSearchConfig } from "@mergeloom/coordinator/evolve";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function fnEvaluator(f: (x: number[]) => number, calls: string[]): CandidateEvaluator {
  return {
    async evaluate(cs: readonly Candidate[]): Promise<CandidateResult[]> {
      return cs.map((c) => {
        calls.push(c.id);
        const v = f(c.genotype);
        return { id: c.id, scores: { s: v }, fitness: v };
      });
    },
    async close() {},
  };
}

const yaml = (every: string) => `genome:
  models: [${join(FIXTURES, "expert-add")}, ${join(FIXTURES, "expert-sub")}]
  merge_method: linear
  layer_granularity: 0
fitness: { graph: g.onnx, vocab: v.json, tasks: [{ name: s, data: fit.jsonl }] }
validation: { every: ${every}, tasks: [{ name: s, data: val.jsonl }] }
search: { budget: 36, population: 6, seed: 2, sigma0: 0.3 }
`;

for (const every of ["all", "best"] as const) {
  describe(`validation split (every: ${every})`, () => {
    test("is scored and reported but never selects the best", async () => {
      const out = await mkdtemp(join(tmpdir(), "mergeloom-validation-"));
      dirs.push(out);
      const config = parseSearchConfig(yaml(every), "s.yml");
      // fitness prefers gene 0 large; validation prefers it near 0.5: they disagree
      const fitCalls: string[] = [];
      const valCalls: string[] = [];
      const r = await runEvolve({
        config,
        sourceText: yaml(every),
        out,
        evaluator: fnEvaluator((x) => x[0] - 0.1 * x[1] * x[1], fitCalls),
        validator: fnEvaluator((x) => -((x[0] - 0.5) ** 2), valCalls),
      });
      const evals = r.state.evaluations;
      const top = evals.reduce((a, b) => ((b.fitness as number) > (a.fitness as number) ? b : a));
      assert.equal(r.state.best!.id, top.id, "best = argmax fitness");
      if (every === "all") assert.deepEqual(valCalls, fitCalls);
      else {
        // only candidates that became the best were validated
        assert.ok(valCalls.length < fitCalls.length && valCalls.includes(top.id), valCalls.join(","));
      }
      const bestVal = r.state.best!.validation as number;
      assert.equal(bestVal, -((top.genotype[0] - 0.5) ** 2));
      const report = await readFile(join(out, "report.md"), "utf8");
      assert.match(report, /\| validation \| gap \(fitness − validation\) \|/);
      assert.ok(report.includes(`| ${bestVal.toFixed(4)} | ${((top.fitness as number) - bestVal).toFixed(4)} |`), report);
      assert.match(report, /best's validation \|/);
      if (every === "all") {
        assert.match(report, /Spearman rank correlation of fitness and validation over them: -?\d\.\d{4}/);
        assert.match(report, /Validation would have picked g\d+-c\d+ .*; the search keeps the fitness-selected best/);
      }
      assert.match(await readFile(join(out, "fitness.svg"), "utf8"), /best's validation/);
    });
  });
}
