// search.recommend_window — with recommend: mean, best.yml is the average of the distribution
// means after the last k generations (iterate averaging). The expected point is computed here from
// the CMA-ES means that state.json holds after each generation (the search is run one generation
// at a time), not by the averaging code under test.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recommendation, runEvolve } from "./run-evolve.js";
import { parseSearchConfig } from "./search-config.js";
import type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";
import { f, models, weights, yamlEvaluator } from "./yaml-evaluator-test-support.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const text = (search: string) => `genome: { models: [${models.join(", ")}], merge_method: linear, normalize: false, layer_granularity: 2 }
fitness: { graph: g.onnx, vocab: v.json, tasks: [{ name: s, data: d.jsonl }] }
search: { strategy: cmaes, budget: 36, population: 7, seed: 5, sigma0: 0.2, ${search} }
`;

describe("search.recommend_window", () => {
  test("best.yml is the average of the last k generations' distribution means, scored within the budget", async () => {
    const out = await mkdtemp(join(tmpdir(), "mergeloom-recommend-window-"));
    dirs.push(out);
    const src = text("recommend: mean, recommend_window: 3");
    const config = parseSearchConfig(src, "s.yml");
    const calls: string[] = [];
    const means: number[][] = [];
    let r;
    // one generation per run: state.json's CMA-ES mean after each generation is the reference
    for (let g = 0; g < 6; g++) {
      r = await runEvolve({ config, sourceText: src, out, evaluator: yamlEvaluator(calls), resume: true, maxGenerations: 1 });
      const saved = JSON.parse(await readFile(join(out, "state.json"), "utf8"));
      if (saved.generation > means.length) means.push(saved.strategy.mean as number[]);
    }
    assert.equal(means.length, 5); // 5 generations of 7 = 35 samples, one evaluation left for the average
    assert.equal(r!.state.evaluations.length, 35);
    const expected = means[0].map((_, i) => (means[2][i] + means[3][i] + means[4][i]) / 3);
    const rec = recommendation(r!.state)!;
    assert.equal(rec.id, "mean-g5");
    rec.genotype.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-12, `gene ${i}: ${x} vs ${expected[i]}`));
    assert.notDeepEqual(rec.genotype, means[4]); // not the final mean
    const best = await readFile(join(out, "best.yml"), "utf8");
    weights(best).forEach((w, i) => assert.ok(Math.abs(w - Math.abs(expected[i])) < 1e-12));
    assert.ok(Math.abs((rec.fitness as number) - f(expected.map((m) => Math.abs(m)))) < 1e-12);
    assert.match(await readFile(join(out, "report.md"), "utf8"), /averaged over the last 3 generations \(search\.recommend_window\)/);
  });

  test("an IPOP restart empties the window: the new run's means are not averaged with the old run's", async () => {
    const out = await mkdtemp(join(tmpdir(), "mergeloom-recommend-window-"));
    dirs.push(out);
    // a flat fitness is never an improvement: patience 1 restarts after the second generation
    const src = text("recommend: mean, recommend_window: 4, restarts: 1, patience: 1").replace("budget: 36", "budget: 50");
    const config = parseSearchConfig(src, "s.yml");
    const flat: CandidateEvaluator = {
      async evaluate(cs: readonly Candidate[]): Promise<CandidateResult[]> {
        return cs.map((c) => ({ id: c.id, scores: { s: 1 }, fitness: 1 }));
      },
      async close() {},
    };
    const runMeans: { restarts: number; mean: number[] }[] = [];
    let r;
    for (let g = 0; g < 6; g++) {
      r = await runEvolve({ config, sourceText: src, out, evaluator: flat, resume: true, maxGenerations: 1 });
      const saved = JSON.parse(await readFile(join(out, "state.json"), "utf8"));
      if (saved.generation > runMeans.length) runMeans.push({ restarts: saved.strategy.restarts, mean: saved.strategy.run.mean });
    }
    // 7 + 7 samples, restart (λ 14), 14 + 14: generations 3 and 4 belong to the second run
    assert.deepEqual(
      runMeans.map((m) => m.restarts),
      [0, 1, 1, 1],
    );
    const expected = runMeans[2].mean.map((x, i) => (x + runMeans[3].mean[i]) / 2);
    const rec = recommendation(r!.state)!;
    rec.genotype.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-12, `gene ${i}: ${x} vs ${expected[i]}`));
  });

  test("one-line errors: not a positive integer, and a window without recommend: mean", () => {
    assert.throws(() => parseSearchConfig(text("recommend: mean, recommend_window: 0"), "s.yml"), /search\.recommend_window: expected a value ≥ 1, got 0/);
    assert.throws(() => parseSearchConfig(text("recommend: mean, recommend_window: 2.5"), "s.yml"), /search\.recommend_window: expected an integer, got 2\.5/);
    assert.throws(
      () => parseSearchConfig(text("recommend_window: 4"), "s.yml"),
      /search\.recommend_window: averaging the last generations' means needs recommend: mean/,
    );
    assert.equal(parseSearchConfig(text("recommend: mean"), "s.yml").search.recommendWindow, 1);
  });
});
