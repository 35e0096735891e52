import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { StreamChunk } from "./define-merge-method.js";
import type { ParamValue } from "./params.js";
import { karcher } from "./karcher.js";
import { describeCase, gridValues, StreamFixture, type StreamCase } from "./stream-test-context.js";

const fx = new StreamFixture();
after(() => fx.close());

const ka = (c: Omit<StreamCase, "method">): StreamCase => ({ method: "karcher", ...c });
const three = [{}, {}, {}];
/** Uncorrelated grid tensors: directions far apart, so the mean takes several iterations. */
const spread = (i: number, n: number): Float32Array => gridValues(20 + i, n);

describe("karcher streamed in row chunks", () => {
  const cases: StreamCase[] = [
    ka({ shape: [37, 29], models: three, base: "none" }),
    // the base is one more point of the mean
    ka({ shape: [37, 29], models: [{}, {}] }),
    ka({ shape: [37, 29], models: three, base: "none", values: spread }),
    ka({ shape: [37, 29], models: three, base: "none", values: spread, params: { tol: 1e-7 } }),
    ka({ shape: [37, 29], models: three, base: "none", values: spread, params: { tol: 1e-3 } }),
    // max_iter bounds the iterations (tol 0 never converges): 0, 1 and 2 iterations
    ka({ shape: [37, 29], models: three, base: "none", values: spread, params: { max_iter: 0 } }),
    ka({ shape: [37, 29], models: three, base: "none", values: spread, params: { max_iter: 1, tol: 0 } }),
    ka({ shape: [37, 29], models: three, base: "none", values: spread, params: { max_iter: 2, tol: 0 } }),
    // a zero tensor has norm ≤ tol: left out of the directions, still in the mean norm
    ka({ shape: [37, 29], models: three, base: "none", values: (i, n) => (i === 1 ? new Float32Array(n) : spread(i, n)) }),
    ka({ shape: [1031], models: three, base: "none", values: spread }),
    ka({ shape: [7, 5, 6], models: [{}, {}], values: spread }),
    ka({ shape: [37, 29], models: three, base: "none", values: spread, dtype: "BF16", outDtype: "BF16" }),
    ka({ shape: [37, 29], models: [{}, {}], dtype: "BF16", outDtype: "F32" }),
  ];
  for (const c of cases) {
    test(`gives the whole-tensor bytes for every chunk size: ${describeCase(c)}`, () => fx.assertMergesStreamed(c));
  }

  test("all-zero inputs give zeros, streamed", async () => {
    const out = await fx.assertStreamsLikeWhole(ka({ shape: [37, 29], models: three, base: "none", values: (_, n) => new Float32Array(n) }));
    assert.ok(out.every((x) => x === 0));
  });

  test("identical inputs (every θ below tol) stop at the first iteration, streamed", async () => {
    const c = ka({ shape: [37, 29], models: three, base: "none", values: (_, n) => gridValues(4, n) });
    await fx.assertStreamsLikeWhole(c);
    const { passes } = streamByHand(c, 5);
    assert.equal(passes, 2 + 2, "norms, start, then dots and ‖T‖ = 0 < tol");
  });

  test("a lone input passes through, streamed", async () => {
    const c = ka({ shape: [37, 29], models: [{}], base: "none" });
    assert.deepEqual(await fx.assertStreamsLikeWhole(c), fx.inputValues(c)[0]);
  });

  test("no input models gives the whole merge's ParamError", async () => {
    await fx.assertSameParamError(ka({ shape: [37, 29], models: [], base: "none" }), /no input models/);
  });
});

/** The karcher stream driven by hand over chunks of `rows` rows: its output and its stats-pass count. */
function streamByHand(c: StreamCase, rows: number): { out: Float32Array; passes: number } {
  const values = fx.inputValues(c);
  const shape = c.shape;
  const rowLen = shape.slice(1).reduce((a, b) => a * b, 1);
  const n = values[0].length;
  const params = c.params ?? {};
  const inputs = values.map((_, i) => ({ model: `m${i}`, params: {} }));
  const stream = karcher.streaming!({ tensorName: "t", shape, inputs, baseIndex: -1, params, numel: n });
  assert.ok(stream);
  const chunks: StreamChunk[] = [];
  for (let r0 = 0; r0 < shape[0]; r0 += rows) {
    const r1 = Math.min(shape[0], r0 + rows);
    const data = values.map((v, i) => ({ ...inputs[i], data: v.subarray(r0 * rowLen, r1 * rowLen) }));
    chunks.push({
      start: r0 * rowLen,
      ctx: { tensorName: "t", shape: [r1 - r0, ...shape.slice(1)], inputs: data, baseIndex: -1, params, random: () => () => 0 },
    });
  }
  let pass = 0;
  for (; stream.needsPass(pass); pass++) for (const chunk of chunks) stream.stats(pass, chunk);
  const out = new Float32Array(n);
  for (const chunk of chunks) out.set(stream.apply(chunk), chunk.start);
  return { out, passes: pass };
}

function mergeWhole(c: StreamCase, params: Record<string, ParamValue>): Float32Array {
  const values = fx.inputValues(c);
  const inputs = values.map((data, i) => ({ model: `m${i}`, params: {}, data }));
  return karcher.merge({ tensorName: "t", shape: c.shape, inputs, baseIndex: -1, params, random: () => () => 0 });
}

describe("karcher's streamed iterations", () => {
  // 2 passes (norms, start direction), 3 per finished iteration (dots, ‖T‖, ‖next‖), and 2 more
  // when an iteration converges (dots, ‖T‖ < tol).
  // (tol 1e-3 converges on the first iteration: no iteration finishes)
  for (const [params, least] of [
    [{}, 2],
    [{ tol: 1e-7 }, 2],
    [{ tol: 1e-3 }, 0],
  ] as const) {
    test(`stop exactly where merge stops: ${JSON.stringify(params)}`, () => {
      const c = ka({ shape: [37, 29], models: three, base: "none", values: spread, params });
      const { out, passes } = streamByHand(c, 4);
      const whole = mergeWhole(c, params);
      assert.deepEqual(out, whole);
      assert.equal((passes - 2) % 3, 2, `${passes} passes: the stream ended on a converged iteration`);
      const iterations = (passes - 4) / 3;
      assert.ok(iterations >= least && iterations < 10, `${iterations} finished iterations`);
      // merge capped at that many iterations gives the same bytes, one fewer does not
      assert.deepEqual(mergeWhole(c, { ...params, max_iter: iterations }), whole);
      if (iterations > 0) assert.notDeepEqual(mergeWhole(c, { ...params, max_iter: iterations - 1 }), whole);
    });
  }

  test("take max_iter iterations when tol never stops them", () => {
    for (const maxIter of [0, 1, 3]) {
      const c = ka({ shape: [37, 29], models: three, base: "none", values: spread, params: { max_iter: maxIter, tol: 0 } });
      const { out, passes } = streamByHand(c, 7);
      assert.equal(passes, 2 + 3 * maxIter);
      assert.deepEqual(out, mergeWhole(c, c.params!));
    }
  });
});
