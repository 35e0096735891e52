// CMA-ES's mean learning rate c_m (search.mean_rate, pycma's CMA_cmean): the mean moves c_m of the
// recombination step while σ's path sees the whole step. The expected mean is recombined here from
// the sampled points with Hansen's log weights, not by the code under test.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CmaEs } from "./cma-es.js";
import { assertResumesBitIdentically } from "./cma-test-support.js";
import { parseSearchConfig } from "./search-config.js";

const sphere = (x: number[]): number => x.reduce((a, v) => a + (v - 1) ** 2, 0);
const x0 = [0.2, -0.4, 0.5, 0.1, 0.3];

describe("cma-es cmean", () => {
  test("the mean moves c_m of the weighted recombination step; σ adapts as for c_m = 1", () => {
    const half = new CmaEs({ x0, sigma0: 0.3, seed: 11, cmean: 0.5 });
    const full = new CmaEs({ x0, sigma0: 0.3, seed: 11 });
    const pop = half.ask();
    assert.deepEqual(full.ask(), pop); // same seed, same first draws
    const f = pop.map(sphere);
    half.tell(pop, f);
    full.tell(pop, f);
    const lambda = pop.length;
    const mu = Math.floor(lambda / 2);
    const raw = Array.from({ length: mu }, (_, i) => Math.log((lambda + 1) / 2) - Math.log(i + 1));
    const w = raw.map((r) => r / raw.reduce((a, b) => a + b, 0));
    const order = f.map((_, i) => i).sort((a, b) => f[a] - f[b]);
    const recombined = x0.map((_, j) => w.reduce((a, wi, r) => a + wi * pop[order[r]][j], 0));
    half.distributionMean.forEach((m, j) => assert.ok(Math.abs(m - (x0[j] + 0.5 * (recombined[j] - x0[j]))) < 1e-12, `coordinate ${j}`));
    full.distributionMean.forEach((m, j) => assert.ok(Math.abs(m - recombined[j]) < 1e-12, `coordinate ${j}`));
    assert.equal(half.sigma, full.sigma);
  });

  test("resumes bit-identically, and refuses a rate outside (0, 1]", () => {
    const a = new CmaEs({ x0, sigma0: 0.3, seed: 3, cmean: 0.4 });
    for (let g = 0; g < 3; g++) a.tell(a.ask(), a.ask().map(sphere));
    assertResumesBitIdentically(a, sphere);
    assert.throws(() => new CmaEs({ x0, sigma0: 0.3, seed: 3, cmean: 0 }), /create cma-es cmean 0: must be in \(0, 1\]/);
    assert.throws(() => new CmaEs({ x0, sigma0: 0.3, seed: 3, cmean: 1.5 }), /create cma-es cmean 1\.5: must be in \(0, 1\]/);
  });

  test("search.mean_rate: one-line errors", () => {
    const text = (search: string) => `genome: { models: [a, b], merge_method: linear }
fitness: { graph: g.onnx, vocab: v.json, tasks: [{ name: s, data: d.jsonl }] }
search: { ${search} }
`;
    assert.equal(parseSearchConfig(text("mean_rate: 0.5"), "s.yml").search.meanRate, 0.5);
    assert.equal(parseSearchConfig(text("seed: 1"), "s.yml").search.meanRate, 1);
    assert.throws(() => parseSearchConfig(text("mean_rate: 0"), "s.yml"), /search\.mean_rate: expected a value > 0, got 0/);
    assert.throws(() => parseSearchConfig(text("mean_rate: 1.5"), "s.yml"), /search\.mean_rate: expected CMA-ES's mean learning rate in \(0, 1\], got 1\.5/);
    assert.throws(() => parseSearchConfig(text("strategy: random, mean_rate: 0.5"), "s.yml"), /search\.mean_rate: needs strategy cmaes/);
  });
});
