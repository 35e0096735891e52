import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { genotypeLength, genotypeToMergeConfig, initialGenotype, validateGenomeDefinition, type GenomeDefinition } from "./genome.js";

const M = ["org/a", "org/b"];

describe("richer genomes (mergeloom extensions)", () => {
  test("della genes are weight, density and epsilon; epsilon is cut to half the room density leaves", () => {
    const def: GenomeDefinition = { models: M, merge_method: "della", base_model: "org/base" };
    assert.equal(genotypeLength(def, 4), 2 * 3);
    // a: density 0.9 → epsilon ≤ min(0.9, 0.1)/2 = 0.05; b: density |−0.4| → epsilon ≤ 0.2, gene 0.1 kept
    const c = genotypeToMergeConfig(def, [-0.7, 0.9, 0.3, 0.5, -0.4, -0.1], 4);
    const p = c.slices![0].sources.map((s) => s.parameters);
    assert.deepEqual({ ...p[0], epsilon: undefined }, { weight: 0.7, density: 0.9, epsilon: undefined });
    assert.ok(Math.abs((p[0]!.epsilon as number) - 0.05) < 1e-15);
    assert.deepEqual(p[1], { weight: 0.5, density: 0.4, epsilon: 0.1 });
    assert.equal(c.parameters.normalize, true); // della's own default
  });

  test("breadcrumbs gamma is |gene| capped at 1 − density", () => {
    const def: GenomeDefinition = { models: M, merge_method: "breadcrumbs", base_model: "org/base" };
    const c = genotypeToMergeConfig(def, [1, 0.7, 0.5, 1, 0.2, -0.05], 4);
    assert.ok(Math.abs((c.slices![0].sources[0].parameters!.gamma as number) - 0.3) < 1e-15);
    assert.equal(c.slices![0].sources[1].parameters!.gamma, 0.05);
    assert.equal(c.parameters.normalize, false);
  });

  test("per_model_lambda appends one gene per model that scales all of its weights", () => {
    const def: GenomeDefinition = {
      models: M,
      merge_method: "task_arithmetic",
      base_model: "org/base",
      layer_granularity: 2,
      filters: ["mlp"],
      per_model_lambda: true,
    };
    // 2 groups × 2 models × 2 sets × 1 param + 2 λ
    assert.equal(genotypeLength(def, 4), 10);
    const x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 2, -0.5];
    const c = genotypeToMergeConfig(def, x, 4);
    assert.deepEqual(c.slices![1].sources[0].parameters, { weight: [{ filter: "mlp", value: 0.5 * 2 }, { value: 0.6 * 2 }] });
    assert.deepEqual(c.slices![1].sources[1].parameters, { weight: [{ filter: "mlp", value: 0.7 * 0.5 }, { value: 0.8 * 0.5 }] });
    assert.deepEqual(initialGenotype(def, 4).slice(-2), [1, 1]);
  });

  test("`initial` sets x0 per gene kind and unknown kinds are rejected", () => {
    const def: GenomeDefinition = { models: M, merge_method: "ties", base_model: "org/base", initial: { weight: 0.6, density: 0.3 } };
    assert.deepEqual(initialGenotype(def, 4), [0.6, 0.3, 0.6, 0.3]);
    assert.throws(
      () => validateGenomeDefinition({ ...def, initial: { gamma: 0.1 } }, 4),
      /genome\.initial\.gamma: not a gene of ties \(genes: weight, density\)/,
    );
  });

  test("`initial` takes one value per model: a search can start from a hand-picked merge", () => {
    const def: GenomeDefinition = {
      models: M,
      merge_method: "ties",
      base_model: "org/base",
      layer_granularity: 2,
      filters: ["mlp"],
      initial: { weight: [0.3, 0.9], density: 0.5 },
    };
    // [group][model][filter set][param]: 2 groups × 2 models × (mlp + catch-all) × (weight, density)
    const x0 = initialGenotype(def, 4);
    assert.deepEqual(
      x0.filter((_, i) => i % 2 === 0),
      [0.3, 0.3, 0.9, 0.9, 0.3, 0.3, 0.9, 0.9],
    );
    assert.ok(x0.filter((_, i) => i % 2 === 1).every((d) => d === 0.5));
    assert.throws(
      () => validateGenomeDefinition({ ...def, initial: { weight: [0.3] } }, 4),
      /genome\.initial\.weight: expected a number or a list of 2 numbers \(one per model\)/,
    );
  });

  test("slerp genomes give each layer group its own base_model: the larger gene's model", () => {
    const def: GenomeDefinition = { models: ["org/a", "org/b", "org/c"], merge_method: "slerp", layer_granularity: 2 };
    const c = genotypeToMergeConfig(def, [0.1, 2, 1, /* group 1 */ 3, -1, 0], 4);
    assert.equal(c.slices![0].base_model, "org/b");
    assert.deepEqual(
      c.slices![0].sources.map((s) => s.model),
      ["org/b", "org/c"],
    );
    assert.ok(Math.abs((c.slices![0].parameters!.t as number) - 1 / (1 + Math.E)) < 1e-15);
    assert.equal(c.slices![1].base_model, "org/a");
  });

  test("per_model kinds get one gene per model, after the cells and before λ; the config carries them as scalars", () => {
    const def: GenomeDefinition = {
      models: M,
      merge_method: "breadcrumbs",
      base_model: "org/base",
      layer_granularity: 2,
      filters: ["mlp"],
      per_model: ["density"],
      per_model_lambda: true,
    };
    // cells: 2 groups × 2 models × 2 sets × (weight, gamma) = 16; then 2 models × density; then 2 λ
    assert.equal(genotypeLength(def, 4), 20);
    const cells = [0.1, 0.01, 0.2, 0.02, 0.3, 0.03, 0.4, 0.04, 0.5, 0.05, 0.6, 0.06, 0.7, 0.07, 0.8, 0.9];
    const c = genotypeToMergeConfig(def, [...cells, 0.6, -0.95, 2, 1], 4);
    // group 1, model a: cells 8..11 = weight 0.5 / gamma 0.05 (mlp), weight 0.6 / gamma 0.06 (rest); λ 2
    assert.deepEqual(c.slices![1].sources[0].parameters, {
      weight: [{ filter: "mlp", value: 0.5 * 2 }, { value: 0.6 * 2 }],
      density: 0.6,
      gamma: [{ filter: "mlp", value: 0.05 }, { value: 0.06 }],
    });
    // model b: density |−0.95|; gamma capped at 1 − 0.95 in the catch-all set (gene 0.9)
    const b = c.slices![1].sources[1].parameters!;
    assert.equal(b.density, 0.95);
    assert.ok(Math.abs((b.gamma as { value: number }[])[1].value - 0.05) < 1e-15);
    assert.deepEqual(initialGenotype({ ...def, initial: { density: [0.3, 1] } }, 4).slice(16), [0.3, 1, 1, 1]);
  });

  test("fixed kinds are not genes: the config carries the value (one per model or for all)", () => {
    const def: GenomeDefinition = { models: M, merge_method: "breadcrumbs", base_model: "org/base", layer_granularity: 2, fixed: { gamma: [0.001, 0.002] } };
    assert.equal(genotypeLength(def, 4), 2 * 2 * 2); // groups × models × (weight, density)
    const c = genotypeToMergeConfig(def, [0.5, 0.7, 0.4, 0.6, 0.3, 0.9995, 0.2, 0.5], 4);
    assert.deepEqual(c.slices![0].sources[0].parameters, { weight: 0.5, density: 0.7, gamma: 0.001 });
    // still capped at 1 − density: min(0.001, 1 − 0.9995)
    assert.ok(Math.abs((c.slices![1].sources[0].parameters!.gamma as number) - 0.0005) < 1e-12);
    assert.equal(c.slices![1].sources[1].parameters!.gamma, 0.002);
    assert.deepEqual(initialGenotype(def, 4), [0.5, 1, 0.5, 1, 0.5, 1, 0.5, 1]);
  });

  test("per_model and fixed are checked: gene kinds of the method, not both, not slerp, a value per model", () => {
    const def: GenomeDefinition = { models: M, merge_method: "breadcrumbs", base_model: "org/base" };
    const bad: Array<[Partial<GenomeDefinition>, RegExp]> = [
      [{ per_model: ["epsilon"] }, /genome\.per_model\.epsilon: not a gene of breadcrumbs \(genes: weight, density, gamma\)/],
      [{ fixed: { lambda: 1 } }, /genome\.fixed\.lambda: not a gene of breadcrumbs/],
      [{ per_model: ["gamma"], fixed: { gamma: 0.01 } }, /genome\.per_model\.gamma: also in genome\.fixed/],
      [{ fixed: { gamma: [0.01] } }, /genome\.fixed\.gamma: expected a number or a list of 2 numbers/],
      [{ fixed: { gamma: 0.01 }, initial: { gamma: 0.02 } }, /genome\.initial\.gamma: is fixed/],
      [{ fixed: { weight: 1, density: 1, gamma: 0.01 } }, /genome\.fixed: fixes every gene kind/],
      [{ merge_method: "slerp", base_model: undefined, per_model: ["t"] }, /genome\.per_model: not supported for slerp/],
    ];
    for (const [change, re] of bad) assert.throws(() => validateGenomeDefinition({ ...def, ...change }, 4), re);
  });
});
