import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { karcher } from "./karcher.js";
import { assertClose, loadReference, makeContext, runMerge } from "./test-context.js";

describe("karcher", () => {
  for (const c of loadReference("karcher.json")) {
    test(`matches mergekit's karcher_merge_tensors (numpy fp32 re-typing): ${c.name}`, () => {
      assertClose(runMerge(karcher, c.ctx()), c.expected, 2e-6);
    });
  }

  test("identical inputs return that input", () => {
    const x = [0.5, -1.2, 0.3, 2.0];
    const out = runMerge(karcher, makeContext({ inputs: ["a", "b", "c"].map((m) => ({ model: m, data: x })) }));
    assertClose(out, x, 1e-6);
  });

  test("two orthogonal vectors of norms 1 and 3 give the 45-degree direction scaled by the mean norm 2 (hand-computed)", () => {
    // the Karcher mean of e1, e2 with equal weights is (e1+e2)/√2 (the initial guess is already the fixed point)
    const out = runMerge(
      karcher,
      makeContext({
        inputs: [
          { model: "a", data: [1, 0] },
          { model: "b", data: [0, 3] },
        ],
      }),
    );
    assertClose(out, [2 * Math.SQRT1_2, 2 * Math.SQRT1_2], 1e-6);
  });

  test("config weights are ignored", () => {
    const mk = (wa: number) =>
      makeContext({
        inputs: [
          { model: "a", data: [1, 2, 0], params: { weight: wa } },
          { model: "b", data: [0, 1, 3], params: { weight: 1 } },
        ],
      });
    assert.deepEqual(Array.from(runMerge(karcher, mk(0.1))), Array.from(runMerge(karcher, mk(10))));
  });

  test("all-zero inputs give zeros and a single input passes through", () => {
    assert.deepEqual(
      Array.from(
        runMerge(
          karcher,
          makeContext({
            inputs: [
              { model: "a", data: [0, 0] },
              { model: "b", data: [0, 0] },
            ],
          }),
        ),
      ),
      [0, 0],
    );
    assert.deepEqual(Array.from(runMerge(karcher, makeContext({ inputs: [{ model: "a", data: [4, 5] }] }))), [4, 5]);
  });

  test("declares mergekit's max_iter and tol defaults", () => {
    assert.deepEqual(karcher.params.max_iter, { kind: "number", default: 10, required: false });
    assert.deepEqual(karcher.params.tol, { kind: "number", default: 1e-5, required: false });
  });
});
