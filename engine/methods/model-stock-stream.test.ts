import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { describeCase, StreamFixture, type StreamCase } from "./stream-test-context.js";

const fx = new StreamFixture();
after(() => fx.close());

const ms = (c: Omit<StreamCase, "method">): StreamCase => ({ method: "model_stock", ...c });
const two = [{}, {}];
const three = [{}, {}, {}];

describe("model_stock streamed in row chunks", () => {
  const cases: StreamCase[] = [
    ms({ shape: [37, 29], models: two }),
    ms({ shape: [37, 29], models: three, base: "first" }),
    ms({ shape: [1031], models: three }),
    ms({ shape: [7, 5, 6], models: [{}, {}, {}, {}] }),
    ms({ shape: [37, 29], models: two, params: { filter_wise: true } }),
    ms({ shape: [7, 5, 6], models: three, params: { filter_wise: true }, base: "first" }),
    // a 1-D tensor is one filter_wise row: one t for the whole tensor, from the stats pass
    ms({ shape: [1031], models: two, params: { filter_wise: true } }),
    ms({ shape: [37, 29], models: three, dtype: "BF16", outDtype: "BF16" }),
    ms({ shape: [37, 29], models: two, params: { filter_wise: true }, dtype: "BF16", outDtype: "F32" }),
  ];
  for (const c of cases) {
    test(`gives the whole-tensor bytes for every chunk size: ${describeCase(c)}`, () => fx.assertMergesStreamed(c));
  }

  test("the whole-tensor t and the filter_wise t differ, so both modes are exercised", async () => {
    const whole = await fx.assertStreamsLikeWhole(ms({ shape: [37, 29], models: two }));
    const rows = await fx.assertStreamsLikeWhole(ms({ shape: [37, 29], models: two, params: { filter_wise: true } }));
    assert.ok(whole.some((x, k) => x !== rows[k]));
  });

  test("the base alone passes through, streamed", async () => {
    const c = ms({ shape: [37, 29], models: [] });
    const out = await fx.assertStreamsLikeWhole(c);
    assert.deepEqual(out, fx.inputValues(c)[0]);
  });

  test("too few models and a missing base give the whole merge's ParamError", async () => {
    await fx.assertSameParamError(ms({ shape: [37, 29], models: [{}] }), /at least 3 models/);
    await fx.assertSameParamError(ms({ shape: [37, 29], models: three, base: "none" }), /base model is required/);
  });
});
