// search.coarse: the coarse stage's genome (one gene set per model, λ folded into the weights),
// the fine stage's x0 (the coarse best in every layer group and filter set, same phenotype), the
// budget split, the config errors, and the two-stage run (best by fitness, resume). Expected
// phenotypes are written out by hand from the genome rules (README: |g| × λ, density clamped).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";
import { coarseGenome, coarseToFinePhases, fineGenome, runCoarseToFine } from "./coarse-search.js";
import { genotypeLength, genotypeToMergeConfig, initialGenotype, type GenomeDefinition } from "./genome.js";
import { parseSearchConfig } from "./search-config.js";
import { repoRoot } from "@mergeloom/engine/testing";

const M = ["org/a", "org/b", "org/c"];
const FINE: GenomeDefinition = {
  models: M,
  merge_method: "task_arithmetic",
  base_model: "org/base",
  layer_granularity: 1,
  filters: ["self_attn", "mlp"],
  per_model_lambda: true,
  initial: { weight: [0.5, -0.25, 1], lambda: [2, 1, -3] },
};

/** Every (slice, filter entry) weight of each model in a config, in order. */
function weightsOf(def: GenomeDefinition, x: number[]): number[][] {
  const c = genotypeToMergeConfig(def, x, 4);
  return def.models.map((_, m) =>
    c.slices!.flatMap((s) => {
      const w = s.sources[m].parameters!.weight;
      return Array.isArray(w) ? w.map((e) => (typeof e === "number" ? e : (e.value as number))) : [w as number];
    }),
  );
}

describe("coarse-to-fine search", () => {
  test("the coarse genome has one weight per model, x0 = the fine x0's phenotype (λ folded in)", () => {
    const g = coarseGenome(FINE);
    assert.equal(genotypeLength(g, 4), 3);
    assert.deepEqual(g.initial, { weight: [1, 0.25, 3] }); // |0.5|·|2|, |−0.25|·1, |1|·|−3|
    assert.deepEqual(weightsOf(g, initialGenotype(g, 4)), [[1], [0.25], [3]]);
    // with negative weights allowed the signs multiply
    assert.deepEqual(coarseGenome({ ...FINE, allow_negative_weights: true }).initial, { weight: [1, -0.25, -3] });
  });

  test("fixed kinds stay fixed in both stages and per_model kinds are ordinary genes of the coarse one", () => {
    const bc: GenomeDefinition = {
      models: ["a", "b"],
      merge_method: "breadcrumbs",
      base_model: "base",
      layer_granularity: 2,
      per_model: ["density"],
      fixed: { gamma: 0.001 },
      initial: { weight: [0.4, 0.9], density: [0.3, 1] },
    };
    const g = coarseGenome(bc);
    assert.equal(genotypeLength(g, 4), 4); // [model][weight, density]
    assert.deepEqual(g.initial, { weight: [0.4, 0.9], density: [0.3, 1] });
    assert.deepEqual(g.fixed, { gamma: 0.001 });
    const fine = fineGenome(bc, [0.5, 0.25, 0.8, 0.9]);
    assert.deepEqual(fine.initial, { weight: [0.5, 0.8], density: [0.25, 0.9] });
    const c = genotypeToMergeConfig(fine, initialGenotype(fine, 4), 4);
    assert.deepEqual(c.slices![1].sources[0].parameters, { weight: 0.5, density: 0.25, gamma: 0.001 });
    assert.deepEqual(c.slices![1].sources[1].parameters, { weight: 0.8, density: 0.9, gamma: 0.001 });
  });

  test("the fine x0 is the coarse best in every layer group and filter set, λ = 1: the same merge", () => {
    const fine = fineGenome(FINE, [0.38, -0.055, 0.86]);
    assert.deepEqual(fine.initial, { weight: [0.38, -0.055, 0.86], lambda: [1, 1, 1] });
    const w = weightsOf(fine, initialGenotype(fine, 4));
    // 4 layer groups × (self_attn, mlp, catch-all)
    assert.deepEqual(w, [Array(12).fill(0.38), Array(12).fill(0.055), Array(12).fill(0.86)]);
    // ties: weight and density per model; the density gene is copied raw, its phenotype clamped
    const ties: GenomeDefinition = { models: ["a", "b"], merge_method: "ties", base_model: "base", layer_granularity: 2 };
    const c = genotypeToMergeConfig(fineGenome(ties, [0.6, 1.3, 0.2, 0.4]), initialGenotype(fineGenome(ties, [0.6, 1.3, 0.2, 0.4]), 4), 4);
    assert.deepEqual(
      c.slices!.map((s) => s.sources.slice(0, 2).map((src) => src.parameters)), // then base_model, without parameters
      [
        [
          { weight: 0.6, density: 1 },
          { weight: 0.2, density: 0.4 },
        ],
        [
          { weight: 0.6, density: 1 },
          { weight: 0.2, density: 0.4 },
        ],
      ],
    );
    assert.throws(() => fineGenome(FINE, [1, 2]), /expected 3 coarse genes, got 2/);
  });

  test("the budget is split by share; the fine stage runs with seed + 1 and without baselines", () => {
    const text = `genome: { models: [a, b], merge_method: linear, layer_granularity: 1 }
fitness: { graph: g, vocab: v, tasks: [{ name: t, data: d }] }
baselines: [x.yml]
search: { budget: 300, seed: 4, sigma0: 0.1, population: 12, coarse: { share: 0.2 } }
`;
    const config = parseSearchConfig(text, "s.yml");
    assert.deepEqual(config.search.coarse, { share: 0.2, sigma0: 0.3 });
    const { coarse, fine } = coarseToFinePhases(config, [0.7, 0.1]);
    assert.equal(coarse.search.budget, 60);
    assert.equal(coarse.search.sigma0, 0.3);
    assert.equal(coarse.search.population, null);
    assert.equal(coarse.search.coarse, null);
    assert.equal(coarse.baselines.length, 1);
    assert.equal(fine!.search.budget, 240);
    assert.equal(fine!.search.seed, 5);
    assert.equal(fine!.search.sigma0, 0.1);
    assert.equal(fine!.search.population, 12);
    assert.equal(fine!.baselines.length, 0);
  });

  test("the shipped example searches 4 weights from 1/models for 60 evaluations, then 132 genes for 240", () => {
    const file = join(repoRoot(), "examples", "evolve-arith-coarse.yml");
    const config = parseSearchConfig(readFileSync(file, "utf8"), file);
    const { coarse, fine } = coarseToFinePhases(config, [0.4, 0.3, 0.9, 0.8]);
    assert.equal(genotypeLength(coarse.genome, 4), 4);
    assert.deepEqual(initialGenotype(coarse.genome, 4), [0.25, 0.25, 0.25, 0.25]);
    assert.equal(coarse.search.budget, 60);
    assert.equal(genotypeLength(fine!.genome, 4), 132);
    assert.equal(fine!.search.budget, 240);
    assert.equal(fine!.search.sigma0, 0.1);
  });

  test("config errors name the field in one line", () => {
    const base = "genome: { models: [a, b], merge_method: linear, layer_granularity: 1 }\nfitness: { graph: g, vocab: v, tasks: [{ name: t, data: d }] }\n";
    assert.throws(() => parseSearchConfig(base + "search: { coarse: { share: 1 } }\n", "s.yml"), /search\.coarse\.share: expected .* in \(0, 1\), got 1/);
    assert.throws(() => parseSearchConfig(base + "search: { coarse: { shar: 0.2 } }\n", "s.yml"), /search\.coarse\.shar: unknown key \(valid: share, sigma0\)/);
    assert.throws(() => parseSearchConfig(base + "search: { coarse: 0.2 }\n", "s.yml"), /search\.coarse: expected a mapping like \{share: 0.2, sigma0: 0.3\}/);
    assert.throws(() => parseSearchConfig(base + "search: { coarse: { share: 0.2, sigma0: 0 } }\n", "s.yml"), /search\.coarse\.sigma0: expected a value > 0/);
    assert.throws(
      () => parseSearchConfig(base.replace(", layer_granularity: 1", "") + "search: { coarse: { share: 0.2 } }\n", "s.yml"),
      /search\.coarse: the genome already has one gene set per model/,
    );
    assert.throws(
      () =>
        parseSearchConfig(
          "genome: { kind: dfs, models: [a, b] }\nfitness: { vocab: v, tasks: [{ name: t, data: d }] }\nsearch: { coarse: { share: 0.2 } }\n",
          "s.yml",
        ),
      /search\.coarse: not used by a layer-path \(dfs\) search/,
    );
  });

  describe("the two-stage run", () => {
    const dirs: string[] = [];
    after(async () => {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });
    // The fitness is a function of the merge each candidate's YAML describes: the mean over
    // slices of −(w_a − 0.7)² − (w_b − 0.1)². The coarse optimum (0.7, 0.1) is also the fine one.
    function yamlEvaluator(calls: string[]): CandidateEvaluator {
      return {
        async evaluate(cs: readonly Candidate[]): Promise<CandidateResult[]> {
          return cs.map((c) => {
            calls.push(c.id);
            const slices = (parse(c.mergeYaml) as { slices: { sources: { parameters: { weight: number } }[] }[] }).slices;
            const f = slices.reduce((a, s) => a - (s.sources[0].parameters.weight - 0.7) ** 2 - (s.sources[1].parameters.weight - 0.1) ** 2, 0) / slices.length;
            return { id: c.id, scores: { s: f }, fitness: f };
          });
        },
        async close() {},
      };
    }
    const models = ["expert-add", "expert-sub"].map((m) => join(repoRoot(), "fixtures", "arith-llama", m));
    const text = `genome: { models: [${models.join(", ")}], merge_method: linear, normalize: false, layer_granularity: 1 }
fitness: { graph: g.onnx, vocab: v.json, tasks: [{ name: s, data: d.jsonl }] }
search: { budget: 60, population: 6, seed: 3, sigma0: 0.05, coarse: { share: 0.5, sigma0: 0.3 } }
`;

    test("the fine stage starts at the coarse best; best.yml is the better stage's; resume adds nothing", async () => {
      const out = await mkdtemp(join(tmpdir(), "mergeloom-coarse-"));
      dirs.push(out);
      const config = parseSearchConfig(text, "s.yml");
      const calls: Record<string, string[]> = { coarse: [], fine: [] };
      const run = () => runCoarseToFine({ config, sourceText: text, out, createEvaluator: async (_c, stage) => yamlEvaluator(calls[stage]), resume: true });
      const r = await run();
      assert.equal(calls.coarse.length, 30);
      assert.equal(calls.fine.length, 30);
      assert.equal(r.state.evaluations.length, 60);
      const coarseState = JSON.parse(await readFile(join(out, "coarse", "state.json"), "utf8"));
      const fineState = JSON.parse(await readFile(join(out, "fine", "state.json"), "utf8"));
      const coarseBest = coarseState.best.genotype as number[];
      const report = await readFile(join(out, "report.md"), "utf8");
      assert.ok(report.includes(`x0 per model: \`${JSON.stringify({ weight: coarseBest })}\``), report);
      // the fine stage samples around x0 = the coarse best in each of the 4 layer groups
      const g0 = fineState.evaluations.filter((e: { generation: number }) => e.generation === 0).map((e: { genotype: number[] }) => e.genotype);
      for (let i = 0; i < 8; i++) {
        const mean = g0.reduce((a: number, x: number[]) => a + x[i], 0) / g0.length;
        assert.ok(Math.abs(mean - coarseBest[i % 2]) < 0.1, `gene ${i}: generation-0 mean ${mean} vs coarse best ${coarseBest[i % 2]}`);
      }
      const fit = (s: { best: { fitness: number } }) => s.best.fitness;
      assert.equal(r.winner, fit(fineState) > fit(coarseState) ? "fine" : "coarse");
      assert.equal(await readFile(join(out, "best.yml"), "utf8"), await readFile(join(out, r.winner, "best.yml"), "utf8"));
      assert.match(report, new RegExp(`best.yml is the ${r.winner} stage's best \\(chosen by fitness\\)`));
      // a finished search resumes to the same result without scoring anything
      const again = await run();
      assert.equal(calls.coarse.length + calls.fine.length, 60);
      assert.equal(again.bestYaml, r.bestYaml);
    });
  });
});
