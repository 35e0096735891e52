import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "@mergeloom/engine/errors";
import { parseSearchConfig } from "../search-config.js";

const YAML = (extra = "", search = "") => `genome:
  kind: dfs
  models: [a, b]
  repeats: 3
fitness:
  vocab: v.json
${extra}  tasks:
    - { name: add, kind: accuracy, data: add.jsonl }
${search}`;

describe("search config with a dfs genome", () => {
  test("genome.kind dfs yields a dfs definition, no graph, and a default step size of 1", () => {
    const c = parseSearchConfig(YAML(), "s.yml");
    assert.equal(c.dfs?.repeats, 3);
    assert.deepEqual(c.dfs?.models, ["a", "b"]);
    assert.equal(c.fitness.graph, undefined);
    assert.equal(c.fitness.vocab, "v.json");
    assert.equal(c.search.sigma0, 1);
    assert.equal(parseSearchConfig(YAML("", "search: { sigma0: 0.5 }\n"), "s.yml").search.sigma0, 0.5);
  });

  test("a dfs search with fitness.graph is rejected, naming the field", () => {
    assert.throws(
      () => parseSearchConfig(YAML("  graph: g.onnx\n"), "s.yml"),
      (e: unknown) => e instanceof ConfigError && e.path === "fitness.graph",
    );
  });

  test("an unknown genome kind is rejected with the known kinds", () => {
    const text = "genome: { kind: dsf, models: [a], merge_method: linear }\nfitness: { graph: g, vocab: v, tasks: [{ name: a, data: a.jsonl }] }\n";
    assert.throws(() => parseSearchConfig(text, "s.yml"), /known: merge, dfs/);
  });
});
