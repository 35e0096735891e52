import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRandom } from "../tensor/random.js";
import { describeCase, gridValues, StreamFixture, type StreamCase } from "./stream-test-context.js";

const fx = new StreamFixture();
after(() => fx.close());

const af = (c: Omit<StreamCase, "method">): StreamCase => ({ method: "arcee_fusion", ...c });
const one = [{}];

/** Input 0 (x) and input 1 (the base, listed last) on a coarse grid: ties in |δ| and in the row KLs. */
const grid = (i: number, n: number): Float32Array => {
  const base = gridValues(30, n);
  if (i === 1) return base;
  const step = gridValues(31, n);
  return Float32Array.from(base, (b, k) => b + step[k] / 8);
};

/**
 * Rows of 29 with three kinds of change, by row: none (importance 0), a tiny one (a KL of either
 * sign from rounding, so negative importances and −0), and a grid step; `kinds` lists them for
 * rows 0, 1, 2, … cyclically. Input 1 is the base.
 */
const rowsOf =
  (kinds: readonly ("none" | "tiny" | "step")[]) =>
  (i: number, n: number): Float32Array => {
    const base = gridValues(40, n);
    if (i === 1) return base;
    const r = createRandom(41, "tiny");
    const step = gridValues(42, n);
    return Float32Array.from(base, (b, k) => {
      const kind = kinds[Math.floor(k / 29) % kinds.length];
      return kind === "none" ? b : kind === "tiny" ? b + (r() - 0.5) * 1e-6 : b + step[k] / 4;
    });
  };
const mixedRows = rowsOf(["none", "tiny", "step", "step"]);
/** Most rows tiny: the lower quartile is a negative importance. */
const mostlyTiny = rowsOf(["tiny", "tiny", "tiny", "step"]);

/** mixedRows with NaN in x at the first element of `rows` rows: those rows' importance is NaN. */
const withNaN =
  (rows: number) =>
  (i: number, n: number): Float32Array => {
    const v = mixedRows(i, n);
    if (i === 0) for (let r = 0; r < rows; r++) v[r * 29] = NaN;
    return v;
  };

describe("arcee_fusion streamed in row chunks", () => {
  const cases: StreamCase[] = [
    af({ shape: [37, 29], models: one }),
    af({ shape: [37, 29], models: one, base: "first" }),
    af({ shape: [37, 29], models: one, values: grid }),
    af({ shape: [37, 29], models: one, values: mixedRows }),
    af({ shape: [37, 29], models: one, values: mostlyTiny }),
    // rows of the last dim inside each dim-0 row
    af({ shape: [7, 5, 29], models: one, values: mixedRows }),
    af({ shape: [37, 29], models: one, values: grid, dtype: "BF16", outDtype: "BF16" }),
    af({ shape: [7, 5, 29], models: one, dtype: "BF16", outDtype: "F32" }),
  ];
  for (const c of cases) {
    test(`gives the whole-tensor bytes for every chunk size: ${describeCase(c)}`, () => fx.assertMergesStreamed(c));
  }

  test("NaN importances sort last, as in the whole merge's sort (a few rows, and past the upper quartile)", async () => {
    for (const rows of [2, 12]) {
      const c = af({ shape: [37, 29], models: one, values: withNaN(rows) });
      const out = await fx.assertStreamsLikeWhole(c);
      assert.ok(out.some((x, k) => x !== fx.inputValues(c)[1][k]) === (rows === 2), "the threshold is NaN only when NaN reaches the upper quartile");
    }
  });

  test("a tensor above the 1e6-element sample gives the whole-tensor bytes (the same sampled indices)", async () => {
    // continuous changes (so another sample would give other quantiles) scaled by 1…5 per row: row
    // KLs spread widely, so some importances pass the threshold
    const values = (i: number, n: number): Float32Array => {
      const base = gridValues(50, n);
      if (i === 1) return base;
      const r = createRandom(51, "delta");
      return Float32Array.from(base, (b, k) => b + (r() - 0.5) * 0.1 * (1 + (Math.floor(k / 1000) % 5)));
    };
    const c = af({ shape: [1001, 1000], models: one, values });
    await fx.assertMergesStreamed(c);
  });

  test("a 1-D tensor (one softmax row) is merged whole", async () => {
    const c = af({ shape: [1031], models: one, values: grid });
    assert.equal(fx.stream(c), undefined);
    const whole = await fx.run(c, Number.MAX_SAFE_INTEGER);
    assert.ok((await fx.run(c, 7)).equals(whole));
  });

  test("the base alone passes through, streamed", async () => {
    const c = af({ shape: [37, 29], models: [] });
    assert.deepEqual(await fx.assertStreamsLikeWhole(c), fx.inputValues(c)[0]);
  });

  test("more than two models and a missing base give the whole merge's ParamError", async () => {
    await fx.assertSameParamError(af({ shape: [37, 29], models: [{}, {}] }), /exactly two models/);
    await fx.assertSameParamError(af({ shape: [37, 29], models: one, base: "none" }), /base model is required/);
  });
});
