// search.recommend: mean — best.yml is CMA-ES's final distribution mean, scored with one
// evaluation kept from the budget; the best sample goes to best-sample.yml. The evaluator is a
// plain function of the merge each YAML describes (the loop is under test, not the merge).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recommendation, runEvolve } from "./run-evolve.js";
import { parseSearchConfig } from "./search-config.js";
import { f, models, weights, yamlEvaluator } from "./yaml-evaluator-test-support.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const text = (
  recommend: string,
  strategy = "cmaes",
) => `genome: { models: [${models.join(", ")}], merge_method: linear, normalize: false, layer_granularity: 2 }
fitness: { graph: g.onnx, vocab: v.json, tasks: [{ name: s, data: d.jsonl }] }
search: { strategy: ${strategy}, budget: 36, population: 7, seed: 5, sigma0: 0.2, recommend: ${recommend} }
`;

describe("search.recommend", () => {
  test("mean: best.yml is the final distribution mean, scored within the budget; the best sample is best-sample.yml", async () => {
    const out = await mkdtemp(join(tmpdir(), "mergeloom-recommend-"));
    dirs.push(out);
    const config = parseSearchConfig(text("mean"), "s.yml");
    const calls: string[] = [];
    const run = () => runEvolve({ config, sourceText: text("mean"), out, evaluator: yamlEvaluator(calls), resume: true });
    const r = await run();
    // 5 generations of 7 = 35 samples; a 6th would leave no evaluation for the mean
    assert.equal(r.state.evaluations.length, 35);
    assert.equal(calls.length, 36);
    assert.equal(calls.at(-1), "mean-g5");
    const saved = JSON.parse(await readFile(join(out, "state.json"), "utf8"));
    const mean = saved.strategy.mean as number[];
    const rec = recommendation(r.state)!;
    assert.equal(rec.id, "mean-g5");
    assert.deepEqual(rec.genotype, mean);
    // best.yml's weights are the mean's phenotype |m| and its recorded fitness is f of them
    const best = await readFile(join(out, "best.yml"), "utf8");
    assert.equal(best, r.bestYaml);
    assert.deepEqual(
      weights(best),
      mean.map((m) => Math.abs(m)),
    );
    assert.equal(rec.fitness, f(mean.map((m) => Math.abs(m))));
    assert.match(best, /^# mergeloom evolve: the distribution mean \(search\.recommend: mean\), candidate mean-g5/);
    const sample = await readFile(join(out, "best-sample.yml"), "utf8");
    assert.ok(sample.includes(`candidate ${r.state.best!.id},`), sample.slice(0, 200));
    assert.match(
      await readFile(join(out, "report.md"), "utf8"),
      /Recommended \(search\.recommend: mean\): best\.yml is the distribution mean after 35 evaluations/,
    );
    // resuming the finished search scores nothing more
    await run();
    assert.equal(calls.length, 36);
  });

  test("a budget that cannot hold one generation (plus the mean) fails naming the budget that fits, having scored nothing", async () => {
    const out = await mkdtemp(join(tmpdir(), "mergeloom-recommend-"));
    dirs.push(out);
    const small = text("mean").replace("budget: 36", "budget: 7");
    const calls: string[] = [];
    await assert.rejects(
      () => runEvolve({ config: parseSearchConfig(small, "s.yml"), sourceText: small, out, evaluator: yamlEvaluator(calls) }),
      /config search\.budget: 7 evaluations cannot hold one generation \(7 candidates \+ 1 for the mean\); set it to at least 8$/,
    );
    assert.equal(calls.length, 0);
  });

  test("one-line errors: an unknown value, and mean without CMA-ES", () => {
    assert.throws(() => parseSearchConfig(text("median"), "s.yml"), /search\.recommend: unknown value 'median' \(known: best, mean\)/);
    assert.throws(() => parseSearchConfig(text("mean", "random"), "s.yml"), /search\.recommend: mean needs strategy cmaes/);
  });
});
