import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, UnknownMethodError } from "../errors/index.js";
import { defineMergeMethod } from "../methods/define-merge-method.js";
import { MergeMethodRegistry } from "../methods/merge-method-registry.js";
import { bool, num, optionalNum, str } from "../methods/params.js";
import { parseMergeConfig } from "./parse-merge-config.js";

// A small registry shaped like mergekit's methods; the real implementations live elsewhere.
const noMerge = () => new Float32Array(0);
const gta = (name: string) =>
  defineMergeMethod({
    name,
    reference: "test",
    base: "required",
    merge: noMerge,
    params: { normalize: bool(true), rescale: bool(false), lambda: num(1), int8_mask: bool(false) },
    modelParams: { weight: num(), density: num(1) },
  });
const registry = new MergeMethodRegistry([
  defineMergeMethod({ name: "linear", reference: "test", base: "none", merge: noMerge, params: { normalize: bool(true) }, modelParams: { weight: num() } }),
  defineMergeMethod({ name: "slerp", reference: "test", base: "required", merge: noMerge, params: { t: num() }, modelParams: {} }),
  defineMergeMethod({ name: "passthrough", reference: "test", base: "none", merge: noMerge, params: {}, modelParams: { scale: optionalNum() } }),
  defineMergeMethod({ name: "toy", reference: "test", base: "optional", merge: noMerge, params: { mode: str("alpha", ["alpha", "beta"]) }, modelParams: {} }),
  gta("ties"),
  gta("dare_ties"),
]);

const parse = (text: string, strict = false) => parseMergeConfig(text, "merge.yml", registry, { strict });

/**
 * Asserts that with --strict the config fails with a ConfigError at `path` whose message contains
 * every fragment, and that without it the config either fails the same way or (for what mergekit
 * ignores) parses with exactly one warning naming the path and saying the same.
 */
function rejects(text: string, path: string, ...fragments: string[]): void {
  const check = (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.path, path, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `'${f}' not in: ${e.message}`);
    return true;
  };
  assert.throws(() => parse(text, true), check);
  let cfg;
  try {
    cfg = parse(text);
  } catch (e) {
    check(e);
    return;
  }
  assert.equal(cfg.warnings.length, 1, cfg.warnings.join("\n"));
  assert.ok(cfg.warnings[0].includes(path === "" ? "merge.yml" : path), cfg.warnings[0]);
  for (const f of fragments.filter((f) => !f.startsWith("merge.yml:"))) assert.ok(cfg.warnings[0].includes(f), `'${f}' not in: ${cfg.warnings[0]}`);
}

/** Asserts the config parses without --strict, warning once with every fragment. */
function warnsOnce(text: string, ...fragments: string[]) {
  const cfg = parse(text);
  assert.equal(cfg.warnings.length, 1, cfg.warnings.join("\n"));
  for (const f of fragments) assert.ok(cfg.warnings[0].includes(f), `'${f}' not in: ${cfg.warnings[0]}`);
  return cfg;
}

const LINEAR = `models:\n  - model: ./a\n    parameters: {weight: 1}\n  - model: ./b\n    parameters: {weight: 2}\nmerge_method: linear\n`;

describe("parseMergeConfig: mergekit example configs", () => {
  test("a ties config in the models form becomes one slice of whole-model sources with gradients and filters", () => {
    const cfg = parse(`models:
  - model: ./orca
    parameters:
      density: [1, 0.7, 0.1] # density gradient
      weight: 1.0
  - model: ./platypus
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1]
  - model: ./wizardmath
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: ./llama-base
parameters:
  normalize: true
  int8_mask: true
dtype: float16
`);
    assert.equal(cfg.mergeMethod, "ties");
    assert.equal(cfg.baseModel, "./llama-base");
    assert.equal(cfg.fromModels, true);
    assert.equal(cfg.dtype, "F16");
    assert.equal(cfg.outDtype, undefined);
    assert.deepEqual(cfg.parameters, { normalize: true, int8_mask: true });
    assert.deepEqual(cfg.slices, [
      {
        sources: [
          { model: "./orca", parameters: { density: [1, 0.7, 0.1], weight: 1 } },
          { model: "./platypus", parameters: { density: 0.5, weight: [0, 0.3, 0.7, 1] } },
          { model: "./wizardmath", parameters: { density: 0.33, weight: [{ filter: "mlp", value: 0.5 }, { value: 0 }] } },
        ],
      },
    ]);
    assert.equal(cfg.file, "merge.yml");
    assert.ok(cfg.sourceText.includes("wizardmath"));
  });

  test("a dare_ties config with top-level defaults, lambda and out_dtype parses", () => {
    const cfg = parse(`merge_method: dare_ties
base_model: base
models:
  - model: base
  - model: m1
    parameters: {density: 0.53, weight: 0.4}
  - model: m2
    parameters: {density: 0.53, weight: 0.6}
parameters:
  int8_mask: true
  lambda: 1.1
  density: 0.9
dtype: float32
out_dtype: bfloat16
tokenizer_source: base
chat_template: chatml
`);
    assert.equal(cfg.slices[0].sources.length, 3);
    assert.deepEqual(cfg.slices[0].sources[0], { model: "base" });
    assert.deepEqual(cfg.parameters, { int8_mask: true, lambda: 1.1, density: 0.9 });
    assert.equal(cfg.dtype, "F32");
    assert.equal(cfg.outDtype, "BF16");
    assert.equal(cfg.tokenizerSource, "base");
    assert.equal(cfg.chatTemplate, "chatml");
  });

  test("the gradient-slerp example keeps layer ranges and filter/value t gradients", () => {
    const cfg = parse(`slices:
  - sources:
      - model: psmathur/orca_mini_v3_13b
        layer_range: [0, 40]
      - model: garage-bAInd/Platypus2-13B
        layer_range: [0, 40]
merge_method: slerp
base_model: psmathur/orca_mini_v3_13b
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # fallback for rest of tensors
dtype: float16
`);
    assert.equal(cfg.fromModels, false);
    assert.deepEqual(cfg.slices, [
      {
        sources: [
          { model: "psmathur/orca_mini_v3_13b", layerRange: [0, 40] },
          { model: "garage-bAInd/Platypus2-13B", layerRange: [0, 40] },
        ],
      },
    ]);
    assert.deepEqual(cfg.parameters, {
      t: [{ filter: "self_attn", value: [0, 0.5, 0.3, 0.7, 1] }, { filter: "mlp", value: [1, 0.5, 0.7, 0.3, 0] }, { value: 0.5 }],
    });
  });

  test("a passthrough frankenmerge keeps one slice per range in order", () => {
    const cfg = parse(`slices:
  - sources:
    - model: ./orca
      layer_range: [0, 24]
  - sources:
    - model: ./platypus
      layer_range: [20, 40]
      parameters: {scale: 0.5}
merge_method: passthrough
dtype: float16
`);
    assert.deepEqual(cfg.slices, [
      { sources: [{ model: "./orca", layerRange: [0, 24] }] },
      { sources: [{ model: "./platypus", layerRange: [20, 40], parameters: { scale: 0.5 } }] },
    ]);
  });

  test("mergekit's long model reference form {model: {path}} is accepted", () => {
    const cfg = parse(`models:
  - model: {model: {path: ./a}}
    parameters: {weight: 1}
  - model:
      model: ./b
    parameters: {weight: 1}
merge_method: linear
base_model: {model: {path: ./a}}
`);
    assert.deepEqual(
      cfg.slices[0].sources.map((s) => s.model),
      ["./a", "./b"],
    );
    assert.equal(cfg.baseModel, "./a");
  });

  test("the vectors extension parses path and scale, scale defaulting to 1", () => {
    const cfg = parse(`models:
  - model: ./a
    parameters: {weight: 1}
    vectors:
      - {path: ./reasoning-vector, scale: 0.5}
      - {path: ./toxic-vector, scale: -1}
      - path: ./plain
merge_method: linear
`);
    assert.deepEqual(cfg.slices[0].sources[0].vectors, [
      { path: "./reasoning-vector", scale: 0.5 },
      { path: "./toxic-vector", scale: -1 },
      { path: "./plain", scale: 1 },
    ]);
  });

  test("keys mergekit ignores (top-level name, slice residual_weight) are accepted", () => {
    const cfg = parse(`name: stage1\n${LINEAR}`);
    assert.equal(cfg.mergeMethod, "linear");
    const s = parse(`slices:\n  - sources: [{model: ./a, layer_range: [0, 2]}]\n    residual_weight: 0.1\nmerge_method: passthrough\n`);
    assert.deepEqual(s.slices, [{ sources: [{ model: "./a", layerRange: [0, 2] }] }]);
  });

  test("tokenizer.source maps to tokenizerSource and defaults to union", () => {
    assert.equal(parse(`${LINEAR}tokenizer:\n  source: ./a\n`).tokenizerSource, "./a");
    assert.equal(parse(`${LINEAR}tokenizer: {}\n`).tokenizerSource, "union");
  });

  test("dtype accepts torch-prefixed names and YAML 1.1 booleans like PyYAML", () => {
    const cfg = parse(`${LINEAR}dtype: torch.bfloat16\nparameters: {normalize: no}\n`);
    assert.equal(cfg.dtype, "BF16");
    assert.deepEqual(cfg.parameters, { normalize: false });
  });
});

describe("parseMergeConfig: rules", () => {
  test("malformed YAML is reported with file, line and column", () => {
    rejects(`models:\n  - model: ./a\n    parameters: {weight: [1, 2}\nmerge_method: linear\n`, "", "merge.yml:3:", "invalid YAML");
  });

  test("a missing merge_method is an error listing the known methods", () => {
    rejects(`models:\n  - model: ./a\n`, "merge_method", "merge_method is missing", "linear, passthrough");
  });

  test("an unknown merge_method lists the known ones", () => {
    assert.throws(
      () => parse(LINEAR.replace("merge_method: linear", "merge_method: tie")),
      (e: unknown) => {
        assert.ok(e instanceof UnknownMethodError);
        assert.match(e.message, /unknown merge method 'tie' \(known: dare_ties, linear, passthrough, slerp, ties, toy\)/);
        return true;
      },
    );
  });

  test("an unknown top-level key is an error that suggests the closest key", () => {
    rejects(`${LINEAR}base_modle: ./a\n`, "base_modle", "unknown key 'base_modle'", "did you mean 'base_model'?", "merge.yml:7:");
  });

  test("modules next to models is an error, and each module needs exactly one of models or slices", () => {
    rejects(`${LINEAR}modules:\n  text: {models: [{model: ./a}]}\n`, "modules", "more than one of `models:`, `slices:` and `modules:`");
    rejects(`merge_method: linear\nmodules:\n  text_decoder: {parameters: {weight: 1}}\n`, "modules.text_decoder", "exactly one of `models:` or `slices:`");
    rejects(`merge_method: linear\nmodules:\n  text_decoder: {models: [{model: ./a}], slice: []}\n`, "modules.text_decoder.slice", "did you mean 'slices'?");
  });

  test("modules become one config per module, every slice listed at the top too, with module parameters", () => {
    const cfg = parse(
      `merge_method: linear\nmodules:\n  text_decoder:\n    slices: [{sources: [{model: ./a, layer_range: [0, 2]}]}]\n  vision_tower:\n    models: [{model: ./a}, {model: ./b}]\n    parameters: {weight: 0.5}\n`,
    );
    assert.deepEqual(
      cfg.modules?.map((m) => [m.name, m.fromModels, m.slices.length, m.parameters]),
      [
        ["text_decoder", false, 1, undefined],
        ["vision_tower", true, 1, { weight: 0.5 }],
      ],
    );
    assert.equal(cfg.slices.length, 2);
  });

  test("unknown keys in slices and sources are errors too with --strict; without, the missing key's error names the typo", () => {
    const text = `slices:\n  - sources: [{model: ./a, layers_range: [0, 2]}]\nmerge_method: passthrough\n`;
    assert.throws(
      () => parse(text, true),
      (e: unknown) => e instanceof ConfigError && e.path === "slices[0].sources[0].layers_range" && e.message.includes("did you mean 'layer_range'?"),
    );
    assert.throws(
      () => parse(text),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.path === "slices[0].sources[0].layer_range" &&
        e.message.includes("missing") &&
        e.message.includes("the unknown key 'layers_range' here was ignored — did you mean 'layer_range'?"),
    );
  });

  test("setting both models and slices is an error", () => {
    rejects(`${LINEAR}slices:\n  - sources: [{model: ./a, layer_range: [0, 2]}]\n`, "slices", "more than one of `models:`, `slices:` and `modules:`");
  });

  test("setting neither models nor slices (or only empty lists) is an error", () => {
    rejects(`merge_method: linear\n`, "", "neither `models:` nor `slices:`");
    rejects(`merge_method: linear\nmodels: []\n`, "", "neither");
  });

  test("a misspelled parameter name suggests the closest valid one and lists them", () => {
    rejects(LINEAR.replace("{weight: 2}", "{wieght: 2}"), "models[1].parameters.wieght", "did you mean 'weight'?", "(valid per model: weight)");
    rejects(
      `${LINEAR.replace("linear", "ties")}base_model: ./a\nparameters: {normalise: true}\n`,
      "parameters.normalise",
      "did you mean 'normalize'?",
      "density, int8_mask, lambda, normalize, rescale, weight",
    );
  });

  test("a global parameter set on a model is an error that says where it belongs", () => {
    rejects(LINEAR.replace("{weight: 2}", "{weight: 2, normalize: false}"), "models[1].parameters.normalize", "global parameter", "top-level");
  });

  test("a value of the wrong type is an error", () => {
    rejects(LINEAR.replace("{weight: 2}", `{weight: "abc"}`), "models[1].parameters.weight", "must be a number", 'string "abc"');
    rejects(LINEAR.replace("{weight: 2}", "{weight: [0, abc]}"), "models[1].parameters.weight[1]", "must be a number");
    // YAML's .nan / .inf are numbers, but not finite: named as such (JSON would print null)
    rejects(LINEAR.replace("{weight: 2}", "{weight: .nan}"), "models[1].parameters.weight", "must be a number", "got NaN");
    rejects(LINEAR.replace("{weight: 2}", "{weight: -.inf}"), "models[1].parameters.weight", "must be a number", "got -Infinity");
    rejects(`${LINEAR}parameters: {normalize: maybe}\n`, "parameters.normalize", "true or false");
    rejects(LINEAR.replace("{weight: 2}", "{weight: []}"), "models[1].parameters.weight", "empty list");
    rejects(LINEAR.replace("{weight: 2}", "{weight: [{filter: mlp, value: x}]}"), "models[1].parameters.weight[0].value", "must be a number");
    assert.throws(
      () => parse(LINEAR.replace("{weight: 2}", "{weight: [{filter: mlp, valeu: 1}]}"), true),
      /models\[1\]\.parameters\.weight\[0\]\.valeu: unknown key 'valeu'.*did you mean 'value'\?/,
    );
    assert.throws(
      () => parse(LINEAR.replace("{weight: 2}", "{weight: [{filter: mlp, valeu: 1}]}")),
      /has no value; the unknown key 'valeu' here was ignored — did you mean 'value'\?/,
    );
  });

  test("a string parameter outside its choices lists the valid ones", () => {
    rejects(
      `${LINEAR.replace("linear", "toy").replace(/ +parameters: \{weight: \d\}\n/g, "")}parameters: {mode: alpah}\n`,
      "parameters.mode",
      "did you mean 'alpha'?",
      "alpha, beta",
    );
  });

  test("layer_range must be two integers with start < end", () => {
    const mk = (lr: string) => `slices:\n  - sources: [{model: ./a, layer_range: ${lr}}]\nmerge_method: passthrough\n`;
    rejects(mk("[4, 2]"), "slices[0].sources[0].layer_range", "[start, end]");
    rejects(mk("[2, 2]"), "slices[0].sources[0].layer_range", "start < end");
    rejects(mk("[0, 2.5]"), "slices[0].sources[0].layer_range", "two integers");
    rejects(mk("[0, 1, 2]"), "slices[0].sources[0].layer_range", "two integers");
    rejects(`slices:\n  - sources: [{model: ./a}]\nmerge_method: passthrough\n`, "slices[0].sources[0].layer_range", "missing");
  });

  test("layer_range in the models form is ignored with a warning (an error with --strict)", () => {
    rejects(LINEAR.replace("  - model: ./b\n", "  - model: ./b\n    layer_range: [0, 2]\n"), "models[1].layer_range", "only read in `slices:`");
  });

  test("sources of one slice must span the same number of layers", () => {
    rejects(
      `slices:\n  - sources:\n    - {model: ./a, layer_range: [0, 4]}\n    - {model: ./b, layer_range: [0, 3]}\nmerge_method: slerp\nbase_model: ./a\nparameters: {t: 0.5}\n`,
      "slices[0].sources[1].layer_range",
      "same number of layers",
    );
  });

  test("dtype and out_dtype must be known names, listed in the error", () => {
    rejects(`${LINEAR}dtype: float8\n`, "dtype", "unknown dtype", "bfloat16");
    rejects(`${LINEAR}out_dtype: int4\n`, "out_dtype", "float16");
  });

  test("a method that requires a base fails without base_model", () => {
    rejects(LINEAR.replace("linear", "ties"), "base_model", "'ties' needs a base model");
  });

  test("in the slices form a required base must be among each slice's sources", () => {
    rejects(
      `slices:\n  - sources:\n    - {model: ./a, layer_range: [0, 4]}\n    - {model: ./b, layer_range: [0, 4]}\nmerge_method: slerp\nbase_model: ./c\nparameters: {t: 0.5}\n`,
      "slices[0].sources",
      "among each slice's sources",
    );
  });

  test("LoRA references model+adapter are read in short and long form as the same reference", () => {
    assert.equal(parse(LINEAR.replace("./b", "./b+./lora")).slices[0].sources[1].model, "./b+./lora");
    assert.equal(parse(LINEAR.replace("./b", "{model: {path: ./b}, lora: {path: ./lora}}")).slices[0].sources[1].model, "./b+./lora");
    rejects(LINEAR.replace("./b", "./b+./l1+./l2"), "models[1].model", "more than one '+'");
    rejects(LINEAR.replace("./b", "./b+"), "models[1].model", "empty model or adapter");
  });

  test("Hub references keep their revision; the long form's revision becomes @revision; a malformed one is rejected", () => {
    assert.equal(parse(LINEAR.replace("./b", "org/b@main")).slices[0].sources[1].model, "org/b@main");
    assert.equal(parse(LINEAR.replace("model: ./b", "model: {model: {path: org/b, revision: v1.0}}")).slices[0].sources[1].model, "org/b@v1.0");
    rejects(LINEAR.replace("./b", "org/b@"), "models[1].model", "write org/name@revision");
    rejects(LINEAR.replace("model: ./b", "model: {model: {path: org/b@main, revision: v1}}"), "models[1].model.model.revision", "already names a revision");
  });

  test("tokenizer_source and tokenizer together are an error (as in mergekit)", () => {
    rejects(`${LINEAR}tokenizer_source: union\ntokenizer: {source: union}\n`, "tokenizer", "keep one");
  });

  test("tokenizer: {} is a union, and tokens, force and pad_to_multiple_of are read with mergekit's source forms", () => {
    assert.deepEqual(parse(`${LINEAR}tokenizer: {}\n`).tokenizer, { source: "union" });
    assert.equal(parse(`${LINEAR}tokenizer: {}\n`).tokenizerSource, "union");
    assert.deepEqual(parse(`${LINEAR}tokenizer_source: ./a\n`).tokenizer, { source: "./a" });
    assert.equal(parse(`${LINEAR}tokenizer:\n`).tokenizer, undefined);
    const cfg = parse(`${LINEAR}tokenizer:
  source: base
  pad_to_multiple_of: 64
  tokens:
    "<|im_start|>": {source: ./b, force: true}
    "<|im_end|>": {source: {kind: model_token, model: ./a, token: "</s>"}}
    "<x>": {source: {kind: model_token, model: ./a, token_id: 7}}
    "<z>": {source: {kind: zero}}
`);
    assert.deepEqual(cfg.tokenizer, {
      source: "base",
      padToMultipleOf: 64,
      tokens: {
        "<|im_start|>": { force: true, source: { kind: "model", model: "./b" } },
        "<|im_end|>": { force: false, source: { kind: "model_token", model: "./a", token: "</s>" } },
        "<x>": { force: false, source: { kind: "model_token", model: "./a", tokenId: 7 } },
        "<z>": { force: false, source: { kind: "zero" } },
      },
    });
    rejects(`${LINEAR}tokenizer: {pad_to_multiple_of: 0}\n`, "tokenizer.pad_to_multiple_of", "positive integer");
    rejects(`${LINEAR}tokenizer: {tokens: {x: {source: {kind: model_token, model: ./a}}}}\n`, "tokenizer.tokens.x.source", "exactly one of token or token_id");
    rejects(`${LINEAR}tokenizer: {tokens: {x: {source: {kind: random}}}}\n`, "tokenizer.tokens.x.source.kind", "model_token, zero");
  });

  test("a slice base_model overrides the top-level one for that slice, and must be among its sources", () => {
    const cfg = parse(
      `slices:\n  - sources: [{model: ./a, layer_range: [0, 2]}, {model: ./b, layer_range: [0, 2]}]\n    base_model: ./b\n  - sources: [{model: ./a, layer_range: [2, 4]}, {model: ./b, layer_range: [2, 4]}]\nmerge_method: slerp\nbase_model: ./a\nparameters: {t: 0.5}\n`,
    );
    assert.deepEqual(
      cfg.slices.map((s) => s.baseModel),
      ["./b", undefined],
    );
    rejects(
      `slices:\n  - sources: [{model: ./a, layer_range: [0, 2]}, {model: ./b, layer_range: [0, 2]}]\n    base_model: ./z\nmerge_method: slerp\nbase_model: ./a\nparameters: {t: 0.5}\n`,
      "slices[0].sources",
      "needs the base model './z' among each slice's sources",
    );
  });

  test("vectors entries need a path and a numeric scale", () => {
    rejects(LINEAR.replace("  - model: ./b\n", "  - model: ./b\n    vectors: [{scale: 1}]\n"), "models[1].vectors[0].path", "non-empty string");
    rejects(LINEAR.replace("  - model: ./b\n", "  - model: ./b\n    vectors: [{path: ./v, scale: big}]\n"), "models[1].vectors[0].scale", "must be a number");
  });

  test("the top level must be a mapping", () => {
    rejects(`- a\n- b\n`, "", "must be a YAML mapping");
  });

  test("nested YAML aliases that expand past 1000 nodes (a billion-laughs file) are refused naming the file", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 6; i++)
      levels.push(
        `l${i}: &l${i} [${Array(10)
          .fill(i === 1 ? "*a" : `*l${i - 1}`)
          .join(", ")}]`,
      );
    rejects(`${levels.join("\n")}\n${LINEAR}`, "", "parse merge.yml:", "aliases expand to more than 1000 nodes");
  });

  test("a duplicate key is an error with --strict, naming both lines", () => {
    rejects(`${LINEAR}merge_method: linear\n`, "merge_method", "merge.yml:7:", "duplicate key 'merge_method' (first on line 6)");
  });
});

describe("parseMergeConfig: what mergekit accepts and ignores is accepted with one warning each", () => {
  test("parameters a method does not use are dropped with a warning naming method, field and line", () => {
    const cfg = warnsOnce(
      `${LINEAR}parameters: {normalize: true, int8_mask: true}\n`,
      "parameters.int8_mask",
      "ignoring parameter 'int8_mask'",
      "'linear' does not use it",
      "merge.yml:7:",
      "--strict",
    );
    assert.deepEqual(cfg.parameters, { normalize: true });
    const slerp = warnsOnce(
      `slices:\n  - sources:\n    - {model: ./a, layer_range: [0, 2]}\n    - {model: ./b, layer_range: [0, 2]}\nmerge_method: slerp\nbase_model: ./a\nparameters: {t: 0.5, normalize: true}\n`,
      "'normalize'",
      "'slerp' does not use it",
    );
    assert.deepEqual(slerp.parameters, { t: 0.5 });
  });

  test("a misspelled parameter is ignored with a 'did you mean'", () => {
    const cfg = warnsOnce(LINEAR.replace("{weight: 2}", "{wieght: 2}"), "models[1].parameters.wieght", "did you mean 'weight'?");
    assert.deepEqual(cfg.slices[0].sources[1].parameters, {});
  });

  test("a per-model parameter a method lacks (weight on passthrough) and a global one set per model are ignored", () => {
    const cfg = parse(`slices:\n  - sources: [{model: ./a, layer_range: [0, 2], parameters: {weight: 0.5, scale: 2}}]\nmerge_method: passthrough\n`);
    assert.equal(cfg.warnings.length, 1);
    assert.deepEqual(cfg.slices[0].sources[0].parameters, { scale: 2 });
    const ties = warnsOnce(
      `${LINEAR.replace("linear", "ties").replace("{weight: 2}", "{weight: 2, lambda: 0.5}")}base_model: ./a\n`,
      "models[1].parameters.lambda",
      "global parameter of 'ties'",
    );
    assert.deepEqual(ties.slices[0].sources[1].parameters, { weight: 2 });
  });

  test("unknown keys at every level (select_topk on top, revision in a source, a stray key in tokenizer) are ignored", () => {
    const top = warnsOnce(`${LINEAR}select_topk: 0.5\n`, "unknown key 'select_topk'", "merge.yml:7:1");
    assert.equal(top.mergeMethod, "linear");
    const src = warnsOnce(
      `slices:\n  - sources: [{model: ./a, layer_range: [0, 2], revision: main}]\nmerge_method: passthrough\n`,
      "slices[0].sources[0].revision",
      "unknown key 'revision'",
    );
    assert.deepEqual(src.slices[0].sources, [{ model: "./a", layerRange: [0, 2] }]);
  });

  test("a duplicate YAML key keeps the last value, as PyYAML does, with a warning naming both lines", () => {
    const cfg = warnsOnce(`${LINEAR}dtype: float16\ndtype: bfloat16\n`, "merge.yml:8:1", "duplicate key 'dtype' (first on line 7)", "last value is used");
    assert.equal(cfg.dtype, "BF16");
    const nested = warnsOnce(LINEAR.replace("{weight: 2}", "{weight: 2, weight: 3}"), "duplicate key 'weight'");
    assert.deepEqual(nested.slices[0].sources[1].parameters, { weight: 3 });
  });

  test("the same model listed twice in a slice is merged once, as mergekit keys inputs by model: last entry's layers, first entry's parameters", () => {
    const cfg = warnsOnce(
      `slices:\n  - sources:\n    - {model: ./a, layer_range: [0, 2], parameters: {weight: 0.2}}\n    - {model: ./b, layer_range: [0, 2], parameters: {weight: 0.5}}\n    - {model: ./a, layer_range: [2, 4], parameters: {weight: 0.9}}\n    - {model: ./a, layer_range: [4, 6]}\nmerge_method: linear\n`,
      "slices[0].sources[0]",
      "'./a' is listed 3 times (entries 0, 2, 3)",
      "layer_range [4, 6]",
      "earlier entries are ignored",
    );
    assert.deepEqual(cfg.slices[0].sources, [
      { model: "./a", layerRange: [4, 6], parameters: { weight: 0.2 } },
      { model: "./b", layerRange: [0, 2], parameters: { weight: 0.5 } },
    ]);
    assert.throws(() => parse(`models:\n  - model: ./a\n  - model: ./a\nmerge_method: linear\nparameters: {weight: 1}\n`, true), /listed 2 times/);
  });

  test("a duplicated model's conditional parameters fall through to the later entries, as ConfigReader.parameter does", () => {
    const cfg = parse(
      `models:\n  - model: ./a\n    parameters: {weight: [{filter: mlp, value: 1}]}\n  - model: ./a\n    parameters: {weight: 0.3}\nmerge_method: linear\n`,
    );
    assert.deepEqual(cfg.slices[0].sources, [{ model: "./a", parameters: { weight: [{ filter: "mlp", value: 1 }, { value: 0.3 }] } }]);
  });

  test("chat_template: every mergekit built-in, auto and a literal template pass; an unknown name fails while parsing", () => {
    for (const t of ["alpaca", "chatml", "exaone", "llama3", "mistral", "auto", "'{% for m in messages %}{{ m.content }}{% endfor %}'"]) {
      assert.ok(parse(`${LINEAR}chat_template: ${t}\n`).chatTemplate);
    }
    rejects(
      `${LINEAR}chat_template: mistrall\n`,
      "chat_template",
      "unknown chat template 'mistrall'",
      "did you mean 'mistral'?",
      "alpaca, chatml, exaone, llama3, mistral, auto",
    );
  });
});
