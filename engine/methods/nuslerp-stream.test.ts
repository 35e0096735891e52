import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { describeCase, gridValues, StreamFixture, type StreamCase } from "./stream-test-context.js";

const fx = new StreamFixture();
after(() => fx.close());

const nu = (c: Omit<StreamCase, "method">): StreamCase => ({ method: "nuslerp", ...c });
const w = [{ weight: 0.3 }, { weight: 0.9 }];
const rows = { nuslerp_flatten: false };
const columns = { nuslerp_flatten: false, nuslerp_row_wise: true };

describe("nuslerp streamed in row chunks", () => {
  const cases: StreamCase[] = [
    // the flattened tensor (default), with a base (task vectors) and without
    nu({ shape: [37, 29], models: w }),
    nu({ shape: [37, 29], models: w, base: "none" }),
    nu({ shape: [37, 29], models: w, base: "first", params: { nuslerp_row_wise: true } }), // row_wise is ignored when flattened
    nu({ shape: [1031], models: w }),
    // rows: vectors along the last dim, inside a chunk
    nu({ shape: [37, 29], models: w, params: rows }),
    nu({ shape: [7, 5, 6], models: w, params: rows, base: "none" }),
    // columns: vectors along dim 0, across every chunk
    nu({ shape: [37, 29], models: w, params: columns }),
    nu({ shape: [7, 5, 6], models: w, params: columns, base: "none" }),
    // a 1-D tensor is one vector in every mode
    nu({ shape: [1031], models: w, params: rows }),
    nu({ shape: [1031], models: w, params: columns, base: "none" }),
    // weights summing to ~0: t = 0.5
    nu({ shape: [37, 29], models: [{ weight: 1 }, { weight: -1 }] }),
    nu({ shape: [37, 29], models: w, dtype: "BF16", outDtype: "BF16" }),
    nu({ shape: [37, 29], models: w, params: columns, dtype: "BF16", outDtype: "F32" }),
  ];
  for (const c of cases) {
    test(`gives the whole-tensor bytes for every chunk size: ${describeCase(c)}`, () => fx.assertMergesStreamed(c));
  }

  test("colinear vectors take the lerp branch, streamed (B = 2A: (1 − t)·A + t·2A)", async () => {
    const c = nu({ shape: [37, 29], models: w, base: "none", values: (i, n) => gridValues(5, n).map((x) => x * (i + 1)) });
    await fx.assertMergesStreamed(c);
    const [a] = fx.inputValues(c);
    const out = await fx.assertStreamsLikeWhole(c);
    const t = 0.9 / 1.2;
    out.forEach((x, k) => assert.ok(Math.abs(x - ((1 - t) * a[k] + t * 2 * a[k])) <= 1e-6 * Math.max(1, Math.abs(x))));
  });

  test("the three layouts give three different merges", async () => {
    const outs: Float32Array[] = [];
    // one merge at a time: the driver's scratch buffers are per thread
    for (const params of [{}, rows, columns]) outs.push(await fx.assertStreamsLikeWhole(nu({ shape: [37, 29], models: w, params })));
    assert.ok(outs[0].some((x, k) => x !== outs[1][k]));
    assert.ok(outs[0].some((x, k) => x !== outs[2][k]));
    assert.ok(outs[1].some((x, k) => x !== outs[2][k]));
  });

  test("a lone tensor passes through, streamed", async () => {
    const c = nu({ shape: [37, 29], models: [{ weight: 1 }], base: "none" });
    assert.deepEqual(await fx.assertStreamsLikeWhole(c), fx.inputValues(c)[0]);
  });

  test("wrong model counts and missing weights give the whole merge's ParamError", async () => {
    await fx.assertSameParamError(nu({ shape: [37, 29], models: [...w, { weight: 1 }], base: "none" }), /exactly two models/);
    await fx.assertSameParamError(nu({ shape: [37, 29], models: [...w, { weight: 1 }] }), /exactly two models plus the base/);
    await fx.assertSameParamError(nu({ shape: [37, 29], models: [{ weight: 1 }, {}] }), /'m2' has no weight/);
  });
});
