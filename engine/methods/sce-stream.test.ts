import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { describeCase, gridValues, StreamFixture, type StreamCase } from "./stream-test-context.js";

const fx = new StreamFixture();
after(() => fx.close());

const sc = (c: Omit<StreamCase, "method">): StreamCase => ({ method: "sce", ...c });
const two = [{}, {}];
const three = [{}, {}, {}];

/** The base (last of `count` inputs) and grid task vectors: many equal variances at every cut. */
const grid =
  (count: number) =>
  (i: number, n: number): Float32Array => {
    const base = gridValues(60, n);
    if (i === count - 1) return base;
    const d = gridValues(61 + i, n);
    return Float32Array.from(base, (b, k) => b + d[k] / 4);
  };

/** grid(count) with the models equal to the base on the first 300 entries: zero variances there. */
const gridWithZeros =
  (count: number) =>
  (i: number, n: number): Float32Array => {
    const v = grid(count)(i, n);
    const base = grid(count)(count - 1, n);
    v.set(base.subarray(0, 300));
    return v;
  };

/** grid(count) with NaN in model 0 at every `every`-th entry: NaN variances, sorted last. */
const gridWithNaN =
  (count: number, every: number) =>
  (i: number, n: number): Float32Array => {
    const v = grid(count)(i, n);
    if (i === 0) for (let k = 0; k < n; k += every) v[k] = NaN;
    return v;
  };

describe("sce streamed in row chunks", () => {
  const cases: StreamCase[] = [
    // select_topk 1 (default): no selection, one stats pass for the mean squares
    sc({ shape: [37, 29], models: two }),
    sc({ shape: [37, 29], models: three, values: grid(4) }),
    // top-k selection by variance, ties at the cut by flat index
    sc({ shape: [37, 29], models: three, values: grid(4), params: { select_topk: 0.5 } }),
    sc({ shape: [37, 29], models: two, values: grid(3), params: { select_topk: 0.1 } }),
    sc({ shape: [37, 29], models: two, values: grid(3), params: { select_topk: 0.999 } }),
    sc({ shape: [37, 29], models: three, values: gridWithZeros(4), params: { select_topk: 0.3 } }),
    sc({ shape: [37, 29], models: two, base: "first", params: { select_topk: 0.3 } }),
    sc({ shape: [1031], models: three, values: grid(4), params: { select_topk: 0.5 } }),
    sc({ shape: [7, 5, 6], models: two, values: grid(3), params: { select_topk: 0.25 } }),
    sc({ shape: [37, 29], models: three, values: grid(4), params: { select_topk: 0.4 }, dtype: "BF16", outDtype: "BF16" }),
    sc({ shape: [37, 29], models: two, params: { select_topk: 0.7 }, dtype: "BF16", outDtype: "F32" }),
  ];
  for (const c of cases) {
    test(`gives the whole-tensor bytes for every chunk size: ${describeCase(c)}`, () => fx.assertMergesStreamed(c));
  }

  test("the selection changes the merge, so the top-k cut is exercised", async () => {
    const all = await fx.assertStreamsLikeWhole(sc({ shape: [37, 29], models: three, values: grid(4) }));
    const half = await fx.assertStreamsLikeWhole(sc({ shape: [37, 29], models: three, values: grid(4), params: { select_topk: 0.5 } }));
    assert.ok(all.some((x, k) => x !== half[k]));
  });

  test("NaN variances sort last: a few, and so many that the cut is NaN (nothing kept)", async () => {
    await fx.assertStreamsLikeWhole(sc({ shape: [37, 29], models: two, values: gridWithNaN(3, 7), params: { select_topk: 0.5 } }));
    const c = sc({ shape: [37, 29], models: two, values: gridWithNaN(3, 1), params: { select_topk: 0.5 } });
    const base = fx.inputValues(c)[2];
    assert.deepEqual(
      await fx.assertStreamsLikeWhole(c),
      Float32Array.from(base, (b) => b + 0),
    );
  });

  test("nothing selected (select_topk 0, or one model: all variances 0) leaves base + 0", async () => {
    for (const c of [
      sc({ shape: [37, 29], models: two, values: grid(3), params: { select_topk: 0 } }),
      sc({ shape: [37, 29], models: [{}], values: grid(2), params: { select_topk: 0.5 } }),
    ]) {
      const base = fx.inputValues(c)[c.models.length];
      assert.deepEqual(
        await fx.assertStreamsLikeWhole(c),
        Float32Array.from(base, (b) => b + 0),
      );
    }
  });

  test("the base alone passes through, streamed", async () => {
    const c = sc({ shape: [37, 29], models: [] });
    assert.deepEqual(await fx.assertStreamsLikeWhole(c), fx.inputValues(c)[0]);
  });

  test("a missing base gives the whole merge's ParamError", async () => {
    await fx.assertSameParamError(sc({ shape: [37, 29], models: two, base: "none" }), /base model is required/);
  });
});
