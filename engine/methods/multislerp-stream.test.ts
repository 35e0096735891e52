import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { describeCase, gridValues, StreamFixture, type StreamCase } from "./stream-test-context.js";

const fx = new StreamFixture();
after(() => fx.close());

const mu = (c: Omit<StreamCase, "method">): StreamCase => ({ method: "multislerp", ...c });
const w2 = [{ weight: 0.3 }, { weight: 0.9 }];
const w3 = [{ weight: 0.5 }, { weight: 1.5 }, { weight: 0.25 }];
const w4 = [{ weight: 1 }, { weight: 0.2 }, { weight: 0.7 }, { weight: 0.4 }];

describe("multislerp streamed in row chunks", () => {
  const cases: StreamCase[] = [
    mu({ shape: [37, 29], models: w2 }),
    mu({ shape: [37, 29], models: w3, base: "first" }),
    mu({ shape: [37, 29], models: w3, base: "none" }),
    mu({ shape: [7, 5, 6], models: w4 }),
    mu({ shape: [1031], models: w3 }),
    mu({ shape: [1031], models: w2, base: "none" }),
    mu({ shape: [37, 29], models: w3, params: { normalize_weights: false } }),
    mu({ shape: [37, 29], models: w3, params: { eps: 1e-3 }, base: "none" }),
    mu({ shape: [37, 29], models: w3, dtype: "BF16", outDtype: "BF16" }),
    mu({ shape: [37, 29], models: w2, dtype: "BF16", outDtype: "F32", base: "none" }),
  ];
  for (const c of cases) {
    test(`gives the whole-tensor bytes for every chunk size: ${describeCase(c)}`, () => fx.assertMergesStreamed(c));
  }

  // u_2 = −u_1 exactly (p_2 = −2·p_1 scales the norm exactly), so m = 0 and mergekit's fallback,
  // the weighted sum w_1·p_1 + w_2·p_2 (+ base), is taken after the second stats pass.
  const antipodal = (base: "last" | "none"): StreamCase =>
    mu({
      shape: [37, 29],
      models: [{ weight: 2 }, { weight: 2 }],
      base,
      values: (i, n) => {
        const b = base === "none" ? new Float32Array(n) : gridValues(1, n);
        if (i === 2) return b;
        const d = gridValues(2, n);
        return Float32Array.from(b, (x, k) => x + (i === 0 ? d[k] : -2 * d[k]));
      },
    });
  for (const base of ["last", "none"] as const) {
    test(`antipodal pairs fall back to the weighted sum, streamed (base ${base})`, async () => {
      const c = antipodal(base);
      await fx.assertMergesStreamed(c);
      const v = fx.inputValues(c);
      const out = await fx.assertStreamsLikeWhole(c);
      const b = base === "none" ? new Float32Array(out.length) : v[2];
      assert.deepEqual(
        out,
        Float32Array.from(b, (x, k) => x + 0.5 * (v[0][k] - x) + 0.5 * (v[1][k] - x)),
      );
    });
  }

  test("antipodal directions among three models give the whole merge's ParamError", async () => {
    const c = antipodal("none");
    await fx.assertSameParamError(
      { ...c, models: [...c.models, { weight: 0 }], values: (i, n) => (i === 2 ? gridValues(3, n) : c.values!(i, n)) },
      /weighted sum of the input directions is zero/,
    );
  });

  test("a single model passes through, the base ignored, streamed", async () => {
    const c = mu({ shape: [37, 29], models: [{ weight: 3 }] });
    assert.deepEqual(await fx.assertStreamsLikeWhole(c), fx.inputValues(c)[0]);
  });

  test("missing weights and weights summing to zero give the whole merge's ParamError", async () => {
    await fx.assertSameParamError(mu({ shape: [37, 29], models: [{ weight: 1 }, {}] }), /'m2' has no weight/);
    await fx.assertSameParamError(mu({ shape: [37, 29], models: [{ weight: 1 }, { weight: -1 }] }), /sum to 0/);
    await fx.assertSameParamError(mu({ shape: [37, 29], models: [] }), /no models besides the base/);
  });
});
