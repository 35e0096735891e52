import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import { ConfigError } from "@mergeloom/engine/errors";
import {
  decodeDfsPath,
  describePath,
  dfsCandidateYaml,
  dfsGenotypeLength,
  dfsInitialGenotype,
  groupPath,
  parseDfsGenome,
  pathSlices,
  slotScale,
} from "./dfs-genome.js";

// Two models of 2 and 3 layers: M = 5 concatenated layers a0 a1 b0 b1 b2; repeats 2 → T = 10 slots.
const COUNTS = [2, 3];
const def = (over: Record<string, unknown> = {}) => parseDfsGenome({ kind: "dfs", models: ["m/a", "m/b"], repeats: 2, ...over });

describe("dfs genome decoding", () => {
  test("the genotype holds T logits and T scale genes, or only the logits without scaling", () => {
    assert.equal(dfsGenotypeLength(def(), COUNTS), 20);
    assert.equal(dfsGenotypeLength(def({ scaling: false }), COUNTS), 10);
  });

  test("slot k stands for concatenated layer k mod M and is on the path iff its logit is positive", () => {
    // slots:        0   1   2   3   4 | 5   6   7   8   9
    // layer:       a0  a1  b0  b1  b2 | a0  a1  b0  b1  b2
    const logits = [1, -1, 0.5, 0, -2, 0.1, 2, -1, -1, 3];
    const path = decodeDfsPath(def({ scaling: false }), COUNTS, logits);
    assert.deepEqual(
      path.map((p) => [p.model, p.layer]),
      [
        [0, 0],
        [1, 0],
        [0, 0],
        [0, 1],
        [1, 2],
      ],
    );
    assert.ok(path.every((p) => p.scale === 1));
  });

  test("max_layers keeps the largest logits in slot order, and an empty path gets the best slot", () => {
    const logits = [1, -1, 0.5, 0, -2, 0.1, 2, -1, -1, 3];
    // included: slots 0 (1), 2 (0.5), 5 (0.1), 6 (2), 9 (3); top 3 = 9, 6, 0 → slot order 0, 6, 9.
    const bounded = decodeDfsPath(def({ scaling: false, max_layers: 3 }), COUNTS, logits);
    assert.deepEqual(
      bounded.map((p) => [p.model, p.layer]),
      [
        [0, 0],
        [0, 1],
        [1, 2],
      ],
    );
    const none = decodeDfsPath(def({ scaling: false }), COUNTS, [-5, -1, -3, -0.5, -2, -9, -9, -9, -9, -9]);
    assert.deepEqual(
      none.map((p) => [p.model, p.layer]),
      [[1, 1]],
      "slot 3 (b1) has the largest logit",
    );
  });

  test("a slot's scale gene g gives exp(0.2·g) rounded to 4 decimals on that slot's layer", () => {
    // exp(0.2) = 1.221402758 → 1.2214; exp(-0.5·0.2) = exp(-0.1) = 0.904837418 → 0.9048.
    assert.equal(slotScale(1, 0.2), 1.2214);
    assert.equal(slotScale(-0.5, 0.2), 0.9048);
    const x = [1, 1, -1, -1, -1, -1, -1, -1, -1, -1, /* scales */ 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert.deepEqual(decodeDfsPath(def(), COUNTS, x), [
      { model: 0, layer: 0, scale: 1 },
      { model: 0, layer: 1, scale: 1.2214 },
    ]);
  });

  test("slices are maximal runs of consecutive layers of one model with one scale", () => {
    const path = [
      { model: 0, layer: 0, scale: 1 },
      { model: 0, layer: 1, scale: 1 },
      { model: 1, layer: 1, scale: 1 },
      { model: 1, layer: 2, scale: 0.9 }, // scale change splits the run
      { model: 1, layer: 0, scale: 0.9 }, // not consecutive (2 → 0)
      { model: 1, layer: 1, scale: 0.9 },
      { model: 0, layer: 1, scale: 1 },
    ];
    assert.deepEqual(groupPath(path), [
      { model: 0, start: 0, end: 2, scale: 1 },
      { model: 1, start: 1, end: 2, scale: 1 },
      { model: 1, start: 2, end: 3, scale: 0.9 },
      { model: 1, start: 0, end: 2, scale: 0.9 },
      { model: 0, start: 1, end: 2, scale: 1 },
    ]);
    const slices = pathSlices(["m/a", "m/b"], path);
    assert.deepEqual(slices[0], { sources: [{ model: "m/a", layer_range: [0, 2] }] });
    assert.deepEqual(slices[2], {
      sources: [
        { model: "m/b", layer_range: [2, 3], parameters: { scale: [{ filter: "o_proj", value: 0.9 }, { filter: "down_proj", value: 0.9 }, { value: 1 }] } },
      ],
    });
    assert.equal(describePath(["m/a", "m/b"], path), "a[0-1] b[1] b[2]×0.9 b[0-1]×0.9 a[1]");
  });

  test("the candidate YAML is a float32-computed, bfloat16-saved passthrough of the path's slices", () => {
    const x = [-1, -1, 1, 1, 1, 1, -1, -1, -1, -1, ...new Array(10).fill(0)];
    const y = parse(dfsCandidateYaml(def(), COUNTS, x, "hello")) as Record<string, unknown>;
    assert.deepEqual(y, {
      merge_method: "passthrough",
      dtype: "float32",
      out_dtype: "bfloat16",
      slices: [{ sources: [{ model: "m/b", layer_range: [0, 3] }] }, { sources: [{ model: "m/a", layer_range: [0, 1] }] }],
    });
    assert.match(dfsCandidateYaml(def(), COUNTS, x, "hello"), /^# hello\n/);
  });

  test("x0 puts the first model's layers (or every layer, once) on the path at scale 1", () => {
    const first = decodeDfsPath(def(), COUNTS, dfsInitialGenotype(def(), COUNTS));
    assert.deepEqual(first, [
      { model: 0, layer: 0, scale: 1 },
      { model: 0, layer: 1, scale: 1 },
    ]);
    const all = decodeDfsPath(def({ init: "all" }), COUNTS, dfsInitialGenotype(def({ init: "all" }), COUNTS));
    assert.deepEqual(
      all.map((p) => `${p.model}.${p.layer}`),
      ["0.0", "0.1", "1.0", "1.1", "1.2"],
    );
  });

  test("the genome section rejects unknown keys, bad repeats and unknown inits, naming the field", () => {
    assert.throws(
      () => def({ repeat: 2 }),
      (e: unknown) => e instanceof ConfigError && e.path === "genome.repeat",
    );
    assert.throws(
      () => def({ repeats: 0 }),
      (e: unknown) => e instanceof ConfigError && e.path === "genome.repeats",
    );
    assert.throws(
      () => def({ init: "best" }),
      (e: unknown) => e instanceof ConfigError && /known: first_model, all, zeros/.test(e.message),
    );
  });
});
