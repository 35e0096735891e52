import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { modelStock } from "./model-stock.js";
import { assertClose, loadReference, makeContext, runMerge } from "./test-context.js";

describe("model_stock", () => {
  for (const c of loadReference("model_stock.json")) {
    test(`matches mergekit's model_stock (numpy fp32 re-typing): ${c.name}`, () => {
      assertClose(runMerge(modelStock, c.ctx()), c.expected, 1e-6);
    });
  }

  test("N = 2 with task vectors at 60 degrees gives t = 2·½/(1+½) = 2/3 (hand-computed)", () => {
    // base 0, X1 = [1,0], X2 = [½, √3/2]: cos = ½, t = 2/3, result = (2/3)·mean = (2/3)·[0.75, √3/4]
    const ctx = makeContext({
      inputs: [
        { model: "x1", data: [1, 0] },
        { model: "x2", data: [0.5, Math.sqrt(3) / 2] },
        { model: "base", data: [0, 0] },
      ],
      base: "base",
    });
    assertClose(runMerge(modelStock, ctx), [0.5, Math.sqrt(3) / 6]);
  });

  test("N = 3 with mutually orthogonal task vectors gives t = 0, the base (hand-computed)", () => {
    const ctx = makeContext({
      inputs: [
        { model: "base", data: [1, 1, 1] },
        { model: "a", data: [2, 1, 1] },
        { model: "b", data: [1, 2, 1] },
        { model: "c", data: [1, 1, 2] },
      ],
      base: "base",
    });
    assertClose(runMerge(modelStock, ctx), [1, 1, 1]);
  });

  test("filter_wise computes t per row (hand-computed)", () => {
    // row 0: task vectors parallel → cos 1 → t = 1 → mean of rows; row 1: orthogonal → t = 0 → base row
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1, 1, 1, 0] },
        { model: "b", data: [2, 2, 0, 1] },
        { model: "base", data: [0, 0, 0, 0] },
      ],
      base: "base",
      shape: [2, 2],
      params: { filter_wise: true },
    });
    assertClose(runMerge(modelStock, ctx), [1.5, 1.5, 0, 0]);
  });

  test("fewer than two models besides the base, or no base, is refused with ParamError", () => {
    const two = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "base", data: [0] },
      ],
      base: "base",
    });
    assert.throws(
      () => runMerge(modelStock, two),
      (e) => e instanceof ParamError && /at least 3 models/.test(e.message),
    );
    const noBase = makeContext({ inputs: ["a", "b", "c"].map((m) => ({ model: m, data: [1] })) });
    assert.throws(
      () => runMerge(modelStock, noBase),
      (e) => e instanceof ParamError && /base model is required/.test(e.message),
    );
  });

  test("the base alone passes through", () => {
    assert.deepEqual(Array.from(runMerge(modelStock, makeContext({ inputs: [{ model: "base", data: [3, 4] }], base: "base" }))), [3, 4]);
  });
});
