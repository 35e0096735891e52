// Mirrored sampling with pairwise selection (search.mirrored; Auger, Brockhoff & Hansen, GECCO 2011).
// The expected mean is recombined here from the pair winners with Hansen's log weights, not by the
// code under test.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CmaEs, pairwiseOrder } from "./cma-es.js";
import { IpopCmaEs } from "./ipop-cma-es.js";
import { assertResumesBitIdentically } from "./cma-test-support.js";
import { parseSearchConfig } from "./search-config.js";

const sphere = (x: number[]): number => x.reduce((a, v) => a + (v - 1) ** 2, 0);
const x0 = [0.2, -0.4, 0.5, 0.1, 0.3, 0.7];

describe("cma-es mirrored sampling", () => {
  test("samples come in pairs m ± σy, an odd λ's last sample unpaired", () => {
    for (const diagonal of [false, true]) {
      const es = new CmaEs({ x0, sigma0: 0.3, seed: 5, popSize: 7, mirrored: true, diagonal });
      for (let g = 0; g < 3; g++) {
        const pop = es.ask();
        const m = es.distributionMean;
        for (let k = 0; k + 1 < pop.length; k += 2) {
          pop[k].forEach((v, i) => assert.ok(Math.abs(v + pop[k + 1][i] - 2 * m[i]) < 1e-12, `pair ${k} coordinate ${i}`));
          assert.notDeepEqual(pop[k], pop[k + 1]);
        }
        es.tell(pop, pop.map(sphere));
      }
    }
  });

  test("IPOP's runs sample mirrored pairs too, and its state keeps the option", () => {
    const ipop = new IpopCmaEs({ x0, sigma0: 0.3, seed: 2, mirrored: true });
    const pop = ipop.ask();
    const m = ipop.state().run.mean;
    pop[0].forEach((v, i) => assert.ok(Math.abs(v + pop[1][i] - 2 * m[i]) < 1e-12, `coordinate ${i}`));
    assert.equal(ipop.state().options.mirrored, true);
    assert.equal(IpopCmaEs.fromState(JSON.parse(JSON.stringify(ipop.state()))).state().run.settings.mirrored, true);
  });

  test("pairwise selection: pair winners by fitness, then the losers; NaN loses", () => {
    assert.deepEqual(pairwiseOrder([3, 1, 0.5, 4, 2, 2]), [2, 1, 4, 5, 0, 3]);
    assert.deepEqual(pairwiseOrder([NaN, 1, 5]), [1, 2, 0]);
  });

  test("the mean recombines only pair winners", () => {
    const es = new CmaEs({ x0, sigma0: 0.3, seed: 11, mirrored: true });
    const pop = es.ask();
    const f = pop.map(sphere);
    es.tell(pop, f);
    const lambda = pop.length;
    const mu = Math.floor(lambda / 2);
    const winners: number[] = [];
    for (let k = 0; k < lambda; k += 2) winners.push(k + 1 < lambda && f[k + 1] < f[k] ? k + 1 : k);
    winners.sort((a, b) => f[a] - f[b]);
    const raw = Array.from({ length: mu }, (_, i) => Math.log((lambda + 1) / 2) - Math.log(i + 1));
    const w = raw.map((r) => r / raw.reduce((a, b) => a + b, 0));
    const expected = x0.map((_, j) => w.reduce((a, wi, r) => a + wi * pop[winners[r]][j], 0));
    es.distributionMean.forEach((v, j) => assert.ok(Math.abs(v - expected[j]) < 1e-12, `coordinate ${j}`));
  });

  test("reaches 1e-8 on the 10-D sphere in fewer evaluations than plain sampling (10 seeds; ≈ 7 % fewer)", () => {
    const evalsTo = (mirrored: boolean, seed: number): number => {
      const es = new CmaEs({ x0: new Array(10).fill(0), sigma0: 0.5, seed, mirrored });
      for (let g = 0; g < 2000; g++) {
        const pop = es.ask();
        const f = pop.map(sphere);
        es.tell(pop, f);
        if (Math.min(...f) < 1e-8) return es.countEval;
      }
      return Infinity;
    };
    let plain = 0;
    let mirrored = 0;
    for (let seed = 1; seed <= 10; seed++) {
      plain += evalsTo(false, seed);
      mirrored += evalsTo(true, seed);
    }
    assert.ok(Number.isFinite(mirrored) && mirrored < 0.96 * plain, `mirrored ${mirrored} vs plain ${plain} evaluations`);
  });

  test("resumes bit-identically mid-search", () => {
    const a = new CmaEs({ x0, sigma0: 0.3, seed: 3, mirrored: true, diagonal: true });
    for (let g = 0; g < 3; g++) a.tell(a.ask(), a.ask().map(sphere));
    a.ask(); // a pending population is part of the state
    assertResumesBitIdentically(a, sphere);
  });

  test("search.mirrored: one-line errors", () => {
    const text = (search: string) => `genome: { models: [a, b], merge_method: linear }
fitness: { graph: g.onnx, vocab: v.json, tasks: [{ name: s, data: d.jsonl }] }
search: { ${search} }
`;
    assert.equal(parseSearchConfig(text("mirrored: true"), "s.yml").search.mirrored, true);
    assert.equal(parseSearchConfig(text("seed: 1"), "s.yml").search.mirrored, false);
    assert.throws(() => parseSearchConfig(text("mirrored: yes please"), "s.yml"), /search\.mirrored: expected true or false, got "yes please"/);
    assert.throws(() => parseSearchConfig(text("strategy: random, mirrored: true"), "s.yml"), /search\.mirrored: needs strategy cmaes/);
  });
});
