import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { candidateYaml } from "./candidate-yaml.js";
import { summarize } from "./evolve-report.js";
import { initialGenotype, type GenomeDefinition } from "./genome.js";
import { parseSearchConfig } from "./search-config.js";
import { repoRoot } from "@mergeloom/engine/testing";

const EXAMPLE = join(repoRoot(), "examples", "evolve-arith.yml");

describe("search config", () => {
  test("the shipped example parses: four experts, task arithmetic, a 300-evaluation budget and six baselines", () => {
    const c = parseSearchConfig(readFileSync(EXAMPLE, "utf8"), "evolve-arith.yml");
    assert.equal(c.genome.models.length, 4);
    assert.equal(c.genome.merge_method, "task_arithmetic");
    assert.equal(c.search.budget, 300);
    assert.deepEqual(
      c.fitness.tasks.map((t) => t.name),
      ["add", "sub", "mul", "rev"],
    );
    assert.equal(c.baselines.length, 6);
    assert.match(c.baselines[0].yaml!, /lambda: 0.3/);
  });

  test("the fine example starts every layer and projection from its per-model weights; a bad entry is named", () => {
    const c = parseSearchConfig(readFileSync(join(repoRoot(), "examples", "evolve-arith-fine.yml"), "utf8"), "evolve-arith-fine.yml");
    assert.deepEqual(c.genome.initial, { weight: [0.4, 0.3, 0.9, 0.8], lambda: 1 });
    const x0 = initialGenotype(c.genome, 4);
    assert.equal(x0.length, 4 * 4 * 8 + 4);
    // layer 3, expert-mul (model 2), down_proj (set 6), then the four λ genes
    assert.equal(x0[(3 * 4 + 2) * 8 + 6], 0.9);
    assert.deepEqual(x0.slice(-4), [1, 1, 1, 1]);
    const bad =
      "genome: { models: [a, b], merge_method: linear, initial: { weight: [0.5, x] } }\nfitness: { graph: g, vocab: v, tasks: [{ name: t, data: d }] }\n";
    assert.throws(() => parseSearchConfig(bad, "s.yml"), /genome\.initial\.weight\[1\]: expected a number, got "x"/);
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x, x]",
      ...[1, 2, 3, 4].map(
        (i) =>
          `l${i}: &l${i} [${Array(10)
            .fill(i === 1 ? "*a" : `*l${i - 1}`)
            .join(", ")}]`,
      ),
    ];
    assert.throws(() => parseSearchConfig(bomb.join("\n"), "s.yml"), /parse s\.yml: .*aliases expand to more than 1000 nodes/);
  });

  test("genome.per_model and genome.fixed parse, and a bad entry is named", () => {
    const g = (extra: string) =>
      `genome: { models: [a, b], merge_method: breadcrumbs, base_model: c, ${extra} }\nfitness: { graph: g, vocab: v, tasks: [{ name: t, data: d }] }\n`;
    const c = parseSearchConfig(g("per_model: [density], fixed: { gamma: 0.001 }"), "s.yml");
    assert.deepEqual(c.genome.per_model, ["density"]);
    assert.deepEqual(c.genome.fixed, { gamma: 0.001 });
    assert.throws(() => parseSearchConfig(g("fixed: { gamma: [0.1, x] }"), "s.yml"), /genome\.fixed\.gamma\[1\]: expected a number, got "x"/);
    assert.throws(() => parseSearchConfig(g("fixed: 0.1"), "s.yml"), /genome\.fixed: expected a mapping of gene kind to a value/);
    assert.throws(() => parseSearchConfig(g("per_model: density"), "s.yml"), /genome\.per_model: expected a list/);
  });

  test("unknown keys, methods and task kinds are rejected with the valid choices", () => {
    const base = "genome: { models: [a], merge_method: linear }\nfitness: { graph: g, vocab: v, tasks: [{ name: t, data: d }] }\n";
    assert.doesNotThrow(() => parseSearchConfig(base, "s.yml"));
    assert.throws(() => parseSearchConfig(base + "serach: {}\n", "s.yml"), /serach: unknown key \(valid: genome, fitness, search, baselines, validation\)/);
    assert.throws(() => parseSearchConfig(base.replace("linear", "model_stock"), "s.yml"), /unknown merge method 'model_stock'.*known: linear/);
    assert.throws(
      () => parseSearchConfig(base.replace("data: d", "kind: bleu, data: d"), "s.yml"),
      /unknown kind 'bleu' \(known: accuracy, likelihood, entropy, command, scorer\)/,
    );
    assert.throws(() => parseSearchConfig(base + "search: { strategy: pso }\n", "s.yml"), /known: cmaes, random/);
    assert.throws(
      () => parseSearchConfig("genome: { models: [a], merge_method: linear }\nfitness: { tasks: [{ name: t, data: d }] }\n", "s.yml"),
      /fitness.graph/,
    );
  });

  test("the likelihood example scores every task by the answer probability, on the fine example's genome and start", () => {
    const c = parseSearchConfig(readFileSync(join(repoRoot(), "examples", "evolve-arith-likelihood.yml"), "utf8"), "evolve-arith-likelihood.yml");
    assert.deepEqual(
      c.fitness.tasks.map((t) => `${t.name}:${t.kind}:${t.measure}:${t.weight}`),
      ["add", "sub", "mul", "rev"].map((n) => `${n}:likelihood:answer_prob:1`),
    );
    assert.deepEqual(c.genome.initial, { weight: [0.4, 0.3, 0.9, 0.8], lambda: 1 });
    assert.equal(c.search.recommend, "mean");
  });

  test("the blend example scores every task by accuracy plus log-probability on the same file, on the fine example's genome and start", () => {
    const c = parseSearchConfig(readFileSync(join(repoRoot(), "examples", "evolve-arith-blend.yml"), "utf8"), "evolve-arith-blend.yml");
    const fine = parseSearchConfig(readFileSync(join(repoRoot(), "examples", "evolve-arith-fine.yml"), "utf8"), "evolve-arith-fine.yml");
    assert.deepEqual(
      c.fitness.tasks.map((t) => `${t.name}:${t.kind}:${t.measure ?? "default"}:${t.weight}:${t.data}`),
      ["add", "sub", "mul", "rev"].flatMap((n) => [
        `${n}:accuracy:default:1:fixtures/arith-llama/eval/${n}.jsonl`,
        `${n}-lp:likelihood:default:1:fixtures/arith-llama/eval/${n}.jsonl`,
      ]),
    );
    assert.deepEqual(c.genome, fine.genome);
    assert.deepEqual(c.search, fine.search);
  });

  test("the hybrid blend example is the hybrid example with the blend example's fitness", () => {
    const read = (f: string) => parseSearchConfig(readFileSync(join(repoRoot(), "examples", f), "utf8"), f);
    const c = read("evolve-hybrid-blend.yml");
    const hybrid = read("evolve-hybrid-arith.yml");
    const blend = read("evolve-arith-blend.yml");
    assert.deepEqual(c.fitness, blend.fitness);
    assert.deepEqual(c.genome, hybrid.genome);
    assert.deepEqual(c.hybrid, hybrid.hybrid);
    assert.deepEqual(c.search, hybrid.search);
    assert.equal(c.search.budget, 1000);
  });

  test("a likelihood task needs data and the graph, like an accuracy task", () => {
    const ok = "genome: { models: [a], merge_method: linear }\nfitness: { graph: g, vocab: v, tasks: [{ name: t, kind: likelihood, data: d, weight: 0.5 }] }\n";
    assert.deepEqual(parseSearchConfig(ok, "s.yml").fitness.tasks, [{ name: "t", kind: "likelihood", data: "d", weight: 0.5 }]);
    assert.throws(() => parseSearchConfig(ok.replace(", data: d", ""), "s.yml"), /fitness\.tasks\[0\]\.data/);
    assert.throws(() => parseSearchConfig(ok.replace("graph: g, ", ""), "s.yml"), /fitness\.graph/);
    assert.equal(parseSearchConfig(ok.replace("weight: 0.5", "measure: answer_prob"), "s.yml").fitness.tasks[0].measure, "answer_prob");
    assert.throws(
      () => parseSearchConfig(ok.replace("weight: 0.5", "measure: prob"), "s.yml"),
      /fitness\.tasks\[0\]\.measure: unknown measure 'prob' \(known: log_prob, answer_prob\)/,
    );
    assert.throws(
      () => parseSearchConfig(ok.replace("kind: likelihood", "kind: accuracy").replace("weight: 0.5", "measure: log_prob"), "s.yml"),
      /fitness\.tasks\[0\]\.measure: only a likelihood task has a measure/,
    );
  });

  test("a command-only fitness needs no graph, and the limit applies to every data task", () => {
    const c = parseSearchConfig(
      "genome: { models: [a], merge_method: linear }\nfitness: { tasks: [{ name: lm, kind: command, command: 'echo 1' }] }\n",
      "s.yml",
    );
    assert.equal(c.fitness.graph, undefined);
    const d = parseSearchConfig(
      "genome: { models: [a], merge_method: linear }\nfitness: { graph: g, vocab: v, limit: 100, tasks: [{ name: t, data: d }, { name: u, data: e, limit: 5 }] }\n",
      "s.yml",
    );
    assert.deepEqual(
      d.fitness.tasks.map((t) => t.limit),
      [100, 5],
    );
  });
});

describe("candidate yaml", () => {
  for (const method of ["linear", "task_arithmetic", "ties", "dare_ties"] as const) {
    test(`a ${method} genome's YAML parses as a merge config computed in float32 and saved as bfloat16`, () => {
      const def: GenomeDefinition = { models: ["m/a", "m/b"], merge_method: method, base_model: "m/base", layer_granularity: 1 };
      const y = candidateYaml(def, initialGenotype(def, 4), 4, "line one\nline two");
      assert.match(y, /^# line one\n# line two\n/);
      const cfg = parseMergeConfig(y, "c.yml", createDefaultRegistry());
      assert.equal(cfg.dtype, "F32");
      assert.equal(cfg.outDtype, "BF16");
      assert.equal(cfg.slices.length, 4);
      assert.equal(/int8_mask/.test(y), method !== "linear");
    });
  }

  test("a slerp genome's candidate is a valid config with a base_model per slice and no normalize", () => {
    const def: GenomeDefinition = { models: ["a", "b"], merge_method: "slerp", layer_granularity: 1 };
    const cfg = parseMergeConfig(candidateYaml(def, [0, 1, 1, 0], 2), "c.yml", createDefaultRegistry());
    assert.deepEqual(
      cfg.slices.map((s) => s.baseModel ?? "(top-level)"),
      ["b", "a"],
    );
  });

  test("a validation split must be distinct from the fitness split; graph and vocab default to the fitness ones", () => {
    const base = "genome: { models: [a], merge_method: linear }\nfitness: { graph: g.onnx, vocab: v.json, tasks: [{ name: t, data: dev.jsonl }] }\n";
    const c = parseSearchConfig(base + "validation: { every: all, tasks: [{ name: t, data: val.jsonl }] }\n", "s.yml");
    assert.equal(c.validation!.every, "all");
    assert.equal(c.validation!.spec.graph, "g.onnx");
    assert.equal(c.validation!.spec.tasks[0].data, "val.jsonl");
    assert.throws(
      () => parseSearchConfig(base + "validation: { tasks: [{ name: t, data: ./dev.jsonl }] }\n", "s.yml"),
      /validation\.tasks\[0\]: uses the same data '\.\/dev\.jsonl' as a fitness task; a validation split must be distinct/,
    );
    assert.throws(
      () => parseSearchConfig(base + "validation: { every: most, tasks: [] }\n", "s.yml"),
      /validation\.every: unknown value 'most' \(known: best, all\)/,
    );
    assert.throws(
      () => parseSearchConfig(base + "validation: { tasks: [{ name: t, kind: acc, data: x }] }\n", "s.yml"),
      /config validation\.tasks\[0\]\.kind: unknown kind 'acc'/,
    );
  });

  test("covariance and restarts are read from search:", () => {
    const base = "genome: { models: [a], merge_method: linear }\nfitness: { graph: g, vocab: v, tasks: [{ name: t, data: d }] }\n";
    const c = parseSearchConfig(base + "search: { covariance: diagonal, restarts: 3, patience: 5 }\n", "s.yml");
    assert.deepEqual([c.search.covariance, c.search.restarts, c.search.patience], ["diagonal", 3, 5]);
    assert.equal(parseSearchConfig(base, "s.yml").search.covariance, "auto");
    assert.throws(
      () => parseSearchConfig(base + "search: { covariance: sparse }\n", "s.yml"),
      /search\.covariance: unknown covariance 'sparse' \(known: full, diagonal, auto\)/,
    );
  });
});

describe("generation summary", () => {
  test("min, median and max skip failed candidates", () => {
    assert.deepEqual(summarize([0.5, NaN, 0.1, 0.3, 0.9]), { min: 0.1, median: 0.4, max: 0.9 });
    assert.deepEqual(summarize([0.2, 0.1, 0.3]), { min: 0.1, median: 0.2, max: 0.3 });
  });
});
