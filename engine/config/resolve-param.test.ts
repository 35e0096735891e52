import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { evalParamExpr, gradientPosition, resolveParam } from "./resolve-param.js";
import type { ParamExpr } from "./merge-config.js";

const Q = "model.layers.3.self_attn.q_proj.weight";

describe("gradientPosition", () => {
  test("layer j of an n-layer slice sits at j/(n-1), and a one-layer slice at 1", () => {
    assert.equal(gradientPosition(0, 6), 0);
    assert.equal(gradientPosition(5, 6), 1);
    assert.equal(gradientPosition(2, 5), 0.5);
    assert.equal(gradientPosition(0, 1), 1);
  });
});

describe("evalParamExpr", () => {
  test("the semantics doc's 6-layer gradient [0,0.5,0.3,0.7,1] gives 0, 0.4, 0.38, 0.46, 0.76, 1.0", () => {
    const g = [0, 0.5, 0.3, 0.7, 1];
    const got = [0, 1, 2, 3, 4, 5].map((j) => evalParamExpr(g, Q, gradientPosition(j, 6)) as number);
    // Hand-computed: scaled = j/5·4 = 0, 0.8, 1.6, 2.4, 3.2, 4.
    const want = [0, 0.4, 0.38, 0.46, 0.76, 1.0];
    got.forEach((v, j) => assert.ok(Math.abs(v - want[j]) < 1e-12, `layer ${j}: ${v} vs ${want[j]}`));
    // Bit-exact against Python float64: (1-0.6)*0.5 + 0.6*0.3 for layer 2.
    assert.equal(got[2], (1 - (1.6 - 1)) * 0.5 + (1.6 - 1) * 0.3);
  });

  test("pre and post weights (t = 0) take a gradient's first value", () => {
    assert.equal(evalParamExpr([0.2, 0.9], "model.embed_tokens.weight", 0), 0.2);
  });

  test("a scalar is returned as is", () => {
    assert.equal(evalParamExpr(0.3, Q, 0.7), 0.3);
    assert.equal(evalParamExpr(true, Q, 0.7), true);
  });

  test("a list of strings is a step function v[int(t·(len−1))]", () => {
    const s = ["a", "b", "c"];
    assert.equal(evalParamExpr(s, Q, 0), "a");
    assert.equal(evalParamExpr(s, Q, 0.49), "a");
    assert.equal(evalParamExpr(s, Q, 0.5), "b");
    assert.equal(evalParamExpr(s, Q, 0.99), "b");
    assert.equal(evalParamExpr(s, Q, 1), "c");
  });

  test("a list of booleans interpolates as 0/1 like mergekit after pydantic coercion (true iff non-zero)", () => {
    assert.equal(evalParamExpr([false, true], Q, 0), false);
    assert.equal(evalParamExpr([false, true], Q, 0.5), true);
    assert.equal(evalParamExpr([true, false], Q, 0.99), true);
    assert.equal(evalParamExpr([true, false], Q, 1), false);
  });

  test("the self_attn filter matches q/k/v/o projections but not the layernorms", () => {
    const expr: ParamExpr = [
      { filter: "self_attn", value: 1 },
      { filter: "mlp", value: 2 },
    ];
    for (const p of ["q_proj", "k_proj", "v_proj", "o_proj"]) {
      assert.equal(evalParamExpr(expr, `model.layers.0.self_attn.${p}.weight`, 0), 1);
    }
    for (const p of ["gate_proj", "up_proj", "down_proj"]) {
      assert.equal(evalParamExpr(expr, `model.layers.0.mlp.${p}.weight`, 0), 2);
    }
    assert.equal(evalParamExpr(expr, "model.layers.0.input_layernorm.weight", 0), undefined);
    assert.equal(evalParamExpr(expr, "model.layers.0.post_attention_layernorm.weight", 0), undefined);
  });

  test("the first matching filter wins, and a missing filter or '*' matches everything", () => {
    const expr: ParamExpr = [{ filter: "q_proj", value: 1 }, { filter: "self_attn", value: 2 }, { value: 3 }];
    assert.equal(evalParamExpr(expr, Q, 0), 1);
    assert.equal(evalParamExpr(expr, "model.layers.3.self_attn.k_proj.weight", 0), 2);
    assert.equal(evalParamExpr(expr, "model.norm.weight", 0), 3);
    assert.equal(evalParamExpr([{ filter: "*", value: 4 }], "lm_head.weight", 0), 4);
  });

  test("a conditional value may itself be a gradient", () => {
    const expr: ParamExpr = [{ filter: "mlp", value: [1, 0.5, 0.7, 0.3, 0] }, { value: 0.5 }];
    // t = 0.5 → scaled 2 → v[2] = 0.7; t = 0.375 → scaled 1.5 → 0.5·0.5 + 0.5·0.7 = 0.6.
    assert.equal(evalParamExpr(expr, "model.layers.1.mlp.up_proj.weight", 0.5), 0.7);
    assert.ok(Math.abs((evalParamExpr(expr, "model.layers.1.mlp.up_proj.weight", 0.375) as number) - 0.6) < 1e-15);
    assert.equal(evalParamExpr(expr, Q, 0.375), 0.5);
  });
});

describe("resolveParam", () => {
  test("the first scope with a defined value wins, in the order given", () => {
    const model = { weight: 0.1 };
    const slice = { weight: 0.2, density: 0.5 };
    const top = { weight: 0.3, density: 0.9, lambda: 2 };
    assert.equal(resolveParam("weight", [model, slice, top], Q, 0), 0.1);
    assert.equal(resolveParam("density", [model, slice, top], Q, 0), 0.5);
    assert.equal(resolveParam("lambda", [model, slice, top], Q, 0), 2);
    assert.equal(resolveParam("gamma", [model, slice, top], Q, 0), undefined);
  });

  test("a scope whose filters match nothing passes on to the next scope", () => {
    const model = { weight: [{ filter: "mlp", value: 0.5 }] };
    const top = { weight: 1 };
    assert.equal(resolveParam("weight", [model, undefined, top], Q, 0), 1);
    assert.equal(resolveParam("weight", [model, undefined, top], "model.layers.0.mlp.up_proj.weight", 0), 0.5);
  });
});
