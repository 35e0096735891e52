import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { linear } from "./linear.js";
import { assertClose, makeContext, runMerge } from "./test-context.js";

const a = [1, 2, 3, 4];
const b = [5, -6, 7, 0.5];

describe("linear", () => {
  test("normalized weights give the weighted mean (hand-computed)", () => {
    // (1·a + 3·b)/4 = [16, -16, 24, 5.5]/4
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 1 } },
        { model: "b", data: b, params: { weight: 3 } },
      ],
      params: { normalize: true },
    });
    assertClose(runMerge(linear, ctx), [4, -4, 6, 1.375]);
  });

  test("normalize: false gives the plain weighted sum", () => {
    // 0.5·a + 2·b = [10.5, -11, 15.5, 3]
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 0.5 } },
        { model: "b", data: b, params: { weight: 2 } },
      ],
      params: { normalize: false },
    });
    assertClose(runMerge(linear, ctx), [10.5, -11, 15.5, 3]);
  });

  test("normalize defaults to true when the parameter is absent", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 2 } },
        { model: "b", data: b, params: { weight: 2 } },
      ],
    });
    assertClose(runMerge(linear, ctx), [3, -2, 5, 2.25]);
  });

  test("a listed base model is averaged like any other model", () => {
    // (1·a + 1·b + 2·base)/4 with base = [0,0,0,8]
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 1 } },
        { model: "b", data: b, params: { weight: 1 } },
        { model: "base", data: [0, 0, 0, 8], params: { weight: 2 } },
      ],
      base: "base",
      params: { normalize: true },
    });
    assertClose(runMerge(linear, ctx), [1.5, -1, 2.5, 5.125]);
  });

  test("negative weights are allowed when they do not sum to zero", () => {
    // (2·a − 1·b)/1 = [-3, 10, -1, 7.5]
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 2 } },
        { model: "b", data: b, params: { weight: -1 } },
      ],
    });
    assertClose(runMerge(linear, ctx), [-3, 10, -1, 7.5]);
  });

  test("weights summing to zero with normalize are refused with a ParamError naming the tensor", () => {
    for (const [wa, wb] of [
      [1, -1],
      [0, 0],
    ]) {
      const ctx = makeContext({
        inputs: [
          { model: "a", data: a, params: { weight: wa } },
          { model: "b", data: b, params: { weight: wb } },
        ],
        tensorName: "model.norm.weight",
      });
      assert.throws(
        () => linear.check!(ctx),
        (e) => e instanceof ParamError && /model\.norm\.weight/.test(e.message) && /sum to/.test(e.message),
      );
      assert.throws(
        () => linear.merge(ctx),
        (e) => e instanceof ParamError && /model\.norm\.weight/.test(e.message),
      );
    }
  });

  test("weights whose fp32 values cancel (0.1 + 0.2 − 0.3) also count as summing to zero", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 0.1 } },
        { model: "b", data: b, params: { weight: 0.2 } },
        { model: "c", data: a, params: { weight: -0.3 } },
      ],
    });
    assert.throws(() => runMerge(linear, ctx), ParamError);
  });

  test("weights summing to zero are fine without normalize", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 1 } },
        { model: "b", data: b, params: { weight: -1 } },
      ],
      params: { normalize: false },
    });
    assertClose(runMerge(linear, ctx), [-4, 8, -4, 3.5]);
  });

  test("a model without a weight (an appended base) is refused with a ParamError naming it and the fix", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: a, params: { weight: 1 } },
        { model: "org/base-model", data: b },
      ],
      base: "org/base-model",
    });
    const isMissingWeight = (e: unknown) => e instanceof ParamError && /'org\/base-model'/.test(e.message) && /add a weight/.test(e.message);
    assert.throws(() => linear.check!(ctx), isMissingWeight);
    assert.throws(() => linear.merge(ctx), isMissingWeight);
  });

  test("declares mergekit's parameters and is elementwise", () => {
    assert.equal(linear.name, "linear");
    assert.deepEqual(linear.params.normalize, { kind: "bool", default: true, required: false });
    assert.equal(linear.modelParams.weight.required, true);
    assert.equal(linear.elementwise, true);
  });
});
