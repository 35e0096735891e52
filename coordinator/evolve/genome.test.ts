import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import { genotypeLength, genotypeToMergeConfig, initialGenotype, mergeConfigToYaml, type GenomeDefinition } from "./genome.js";
import { Rng } from "./rng.js";

const ties: GenomeDefinition = { models: ["org/a", "org/b"], merge_method: "ties", base_model: "org/base", layer_granularity: 2 };
// genes in [group][model][filter set][param] order: (g0 a w, g0 a d, g0 b w, g0 b d, g1 a w, ...)
const tiesGenes = [-0.5, 1.7, 0.25, -0.3, 0.1, 0.6, -2, -1.5];

describe("genotype layout", () => {
  test("the length is layer groups × models × (filters + 1) × method params", () => {
    assert.equal(genotypeLength(ties, 4), 2 * 2 * 1 * 2);
    assert.equal(genotypeLength({ ...ties, layer_granularity: 0 }, 4), 1 * 2 * 1 * 2);
    assert.equal(genotypeLength({ ...ties, filters: ["self_attn", "mlp"], layer_granularity: 1 }, 4), 4 * 2 * 3 * 2);
    assert.equal(genotypeLength({ models: ["a", "b", "c"], merge_method: "slerp", layer_granularity: 4 }, 8), 2 * 3 * 1 * 1);
    assert.equal(genotypeLength({ models: ["a"], merge_method: "linear" }, 32), 1);
  });

  test("the initial genotype has weight 1/models and density 1, like mergekit-evolve's x0", () => {
    const x0 = initialGenotype({ models: ["a", "b", "c"], merge_method: "dare_ties", base_model: "a" }, 6);
    assert.deepEqual(x0, [1 / 3, 1, 1 / 3, 1, 1 / 3, 1]);
    assert.deepEqual(initialGenotype({ models: ["a", "b"], merge_method: "linear", filters: ["mlp"] }, 2), [0.5, 0.5, 0.5, 0.5]);
  });

  test("a random initial genotype is uniform in [0, 1) and reproducible from the seed", () => {
    const a = initialGenotype(ties, 4, new Rng(5));
    assert.equal(a.length, 8);
    assert.ok(a.every((v) => v >= 0 && v < 1));
    assert.deepEqual(initialGenotype(ties, 4, new Rng(5)), a);
  });
});

describe("genotypeToMergeConfig", () => {
  test("ties: weights go through abs, densities through abs and a clamp to [0, 1], one slice per layer group", () => {
    const c = genotypeToMergeConfig(ties, tiesGenes, 4);
    assert.deepEqual(c, {
      merge_method: "ties",
      parameters: { normalize: true, int8_mask: true },
      dtype: "bfloat16",
      base_model: "org/base",
      slices: [
        {
          sources: [
            { model: "org/a", layer_range: [0, 2], parameters: { weight: 0.5, density: 1 } },
            { model: "org/b", layer_range: [0, 2], parameters: { weight: 0.25, density: 0.3 } },
            { model: "org/base", layer_range: [0, 2] },
          ],
        },
        {
          sources: [
            { model: "org/a", layer_range: [2, 4], parameters: { weight: 0.1, density: 0.6 } },
            { model: "org/b", layer_range: [2, 4], parameters: { weight: 2, density: 1 } },
            { model: "org/base", layer_range: [2, 4] },
          ],
        },
      ],
    });
  });

  test("allow_negative_weights keeps the weight's sign but still clamps density", () => {
    const c = genotypeToMergeConfig({ ...ties, allow_negative_weights: true }, tiesGenes, 4);
    assert.deepEqual(c.slices![0].sources[0].parameters, { weight: -0.5, density: 1 });
    assert.deepEqual(c.slices![1].sources[1].parameters, { weight: -2, density: 1 });
  });

  test("a base model listed among the models gets no extra source, and normalize can be overridden", () => {
    const c = genotypeToMergeConfig({ ...ties, base_model: "org/a", normalize: false }, tiesGenes, 4);
    assert.equal(c.slices![0].sources.length, 2);
    assert.equal(c.parameters.normalize, false);
    assert.equal(c.base_model, "org/a");
  });

  test("filters give each model one gene per filter plus a catch-all, emitted as filtered values", () => {
    const def: GenomeDefinition = { models: ["a", "b"], merge_method: "linear", filters: ["self_attn", "mlp"] };
    const c = genotypeToMergeConfig(def, [0.1, 0.2, -0.3, 0.4, 0.5, 0.6], 3);
    assert.deepEqual(c.slices, [
      {
        sources: [
          { model: "a", layer_range: [0, 3], parameters: { weight: [{ filter: "self_attn", value: 0.1 }, { filter: "mlp", value: 0.2 }, { value: 0.3 }] } },
          { model: "b", layer_range: [0, 3], parameters: { weight: [{ filter: "self_attn", value: 0.4 }, { filter: "mlp", value: 0.5 }, { value: 0.6 }] } },
        ],
      },
    ]);
    assert.equal(c.parameters.normalize, true);
    assert.equal(c.base_model, undefined);
  });

  test("smooth emits per-model gradients over the layer groups in a models section", () => {
    const def: GenomeDefinition = { models: ["a", "b"], merge_method: "task_arithmetic", base_model: "base", smooth: true, layer_granularity: 1 };
    const c = genotypeToMergeConfig(def, [1, -2, 3, 4, 5, -6], 3);
    assert.deepEqual(c.models, [{ model: "a", parameters: { weight: [1, 3, 5] } }, { model: "b", parameters: { weight: [2, 4, 6] } }, { model: "base" }]);
    assert.equal(c.slices, undefined);
    assert.equal(c.parameters.normalize, false); // task_arithmetic's default
  });

  test("smooth with one layer group emits scalars, and with filters emits filtered gradients", () => {
    const one = genotypeToMergeConfig({ models: ["a", "b"], merge_method: "dare_ties", base_model: "a", smooth: true }, [0.3, 2, -0.7, 0.5], 4);
    assert.deepEqual(one.models, [
      { model: "a", parameters: { weight: 0.3, density: 1 } },
      { model: "b", parameters: { weight: 0.7, density: 0.5 } },
    ]);
    const filtered = genotypeToMergeConfig(
      { models: ["a"], merge_method: "linear", smooth: true, filters: ["mlp"], layer_granularity: 2 },
      [0.1, 0.2, 0.3, 0.4], // g0 (mlp, rest), g1 (mlp, rest)
      4,
    );
    assert.deepEqual(filtered.models, [{ model: "a", parameters: { weight: [{ filter: "mlp", value: [0.1, 0.3] }, { value: [0.2, 0.4] }] } }]);
  });

  test("slerp picks the two largest raw genes per group, t = softmax share of the runner-up, the winner as base", () => {
    const def: GenomeDefinition = { models: ["a", "b", "c"], merge_method: "slerp", layer_granularity: 2 };
    const c = genotypeToMergeConfig(def, [0.1, 0.9, 0.5, -3, -3, -4], 4);
    const [s0, s1] = c.slices!;
    assert.deepEqual(s0.sources, [
      { model: "b", layer_range: [0, 2] },
      { model: "c", layer_range: [0, 2] },
    ]);
    assert.equal(s0.base_model, "b");
    // softmax([0.9, 0.5])[1] = 1 / (1 + e^0.4)
    assert.ok(Math.abs((s0.parameters!.t as number) - 1 / (1 + Math.exp(0.4))) < 1e-15);
    // a tie keeps model order; raw negative genes are not passed through abs()
    assert.deepEqual(
      s1.sources.map((s) => s.model),
      ["a", "b"],
    );
    assert.equal(s1.base_model, "a");
    assert.equal(s1.parameters!.t, 0.5);
    assert.equal(c.parameters.normalize, false);
  });

  test("slerp with a tokenizer source also weights the two sources 1 - t and t", () => {
    const c = genotypeToMergeConfig({ models: ["a", "b"], merge_method: "slerp", tokenizer_source: "base", base_model: "z" }, [1, 0], 2);
    const t = 1 / (1 + Math.E);
    const s = c.slices![0];
    assert.ok(Math.abs((s.sources[1].parameters!.weight as number) - t) < 1e-15);
    assert.ok(Math.abs((s.sources[0].parameters!.weight as number) - (1 - t)) < 1e-15);
    assert.deepEqual(s.sources[2], { model: "z", layer_range: [0, 2] });
    assert.equal(c.tokenizer_source, "base");
  });

  test("definitions mergekit-evolve rejects are rejected with the field named", () => {
    assert.throws(() => genotypeLength({ models: ["a"], merge_method: "ties" }, 4), /genome.base_model: required/);
    assert.throws(() => genotypeLength({ models: ["a", "b"], merge_method: "slerp", smooth: true }, 4), /genome.smooth/);
    assert.throws(() => genotypeLength({ models: ["a", "b"], merge_method: "slerp", filters: ["mlp"] }, 4), /genome.filters/);
    assert.throws(() => genotypeLength({ ...ties, layer_granularity: 3 }, 4), /not a multiple of layer_granularity 3/);
    assert.throws(
      () => genotypeLength({ models: ["a"], merge_method: "model_stock" as never }, 4),
      /unknown merge method 'model_stock' for evolution \(known: linear, task_arithmetic, ties, dare_ties, slerp, dare_linear, della, della_linear, breadcrumbs, breadcrumbs_ties\)/,
    );
    assert.throws(() => genotypeToMergeConfig(ties, [1, 2, 3], 4), /expected 8 finite genes/);
  });
});

describe("mergeConfigToYaml", () => {
  test("writes sorted keys, flow-style number lists and block-style sources, and parses back to the object", () => {
    const c = genotypeToMergeConfig(ties, tiesGenes, 4);
    const text = mergeConfigToYaml(c);
    assert.deepEqual(parse(text), c);
    const head = [
      "base_model: org/base",
      "dtype: bfloat16",
      "merge_method: ties",
      "parameters:",
      "  int8_mask: true",
      "  normalize: true",
      "slices:",
      "- sources:",
      "  - layer_range: [0, 2]",
      "    model: org/a",
      "    parameters:",
      "      density: 1",
      "      weight: 0.5",
      "  - layer_range: [0, 2]",
      "    model: org/b",
    ].join("\n");
    assert.ok(text.startsWith(head), text);
  });

  test("smooth gradients are written as flow lists", () => {
    const def: GenomeDefinition = { models: ["a", "b"], merge_method: "linear", smooth: true, layer_granularity: 1 };
    const text = mergeConfigToYaml(genotypeToMergeConfig(def, [0.5, 0.25, 1, 2], 2));
    assert.match(text, /- model: a\n {2}parameters:\n {4}weight: \[0.5, 1\]/);
  });
});
