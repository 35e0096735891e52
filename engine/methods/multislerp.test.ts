import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { multislerp } from "./multislerp.js";
import { assertClose, loadReference, makeContext, runMerge } from "./test-context.js";

describe("multislerp", () => {
  for (const c of loadReference("multislerp.json")) {
    test(`matches mergekit's torch multislerp (numpy fp32 re-typing): ${c.name}`, () => {
      assertClose(runMerge(multislerp, c.ctx()), c.expected, 1e-6);
    });
  }

  test("two orthogonal unit vectors with equal weights meet at 45 degrees (hand-computed)", () => {
    // m = (e1+e2)/√2; tangents ±(e1−e2)/2 cancel → T = 0, ‖T‖' = 1e-8 → r ≈ m; scale = 1
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1, 0, 0], params: { weight: 1 } },
        { model: "b", data: [0, 1, 0], params: { weight: 1 } },
      ],
    });
    assertClose(runMerge(multislerp, ctx), [Math.SQRT1_2, Math.SQRT1_2, 0]);
  });

  test("a single model is returned unchanged", () => {
    const out = runMerge(multislerp, makeContext({ inputs: [{ model: "a", data: [1, 2], params: { weight: 3 } }] }));
    assert.deepEqual(Array.from(out), [1, 2]);
  });

  test("antipodal inputs with balancing weights among three models are refused", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1, 0], params: { weight: 1 } },
        { model: "b", data: [-1, 0], params: { weight: 1 } },
        { model: "c", data: [0, 0], params: { weight: 1 } },
      ],
    });
    assert.throws(
      () => runMerge(multislerp, ctx),
      (e) => e instanceof ParamError && /weighted sum/.test(e.message),
    );
  });

  test("missing weights and weights summing to zero are refused with ParamError", () => {
    const noW = makeContext({
      inputs: [
        { model: "a", data: [1], params: { weight: 1 } },
        { model: "b", data: [2] },
      ],
    });
    assert.throws(
      () => runMerge(multislerp, noW),
      (e) => e instanceof ParamError && /'b' has no weight/.test(e.message),
    );
    const zero = makeContext({
      inputs: [
        { model: "a", data: [1, 0], params: { weight: 1 } },
        { model: "b", data: [0, 1], params: { weight: -1 } },
      ],
    });
    assert.throws(
      () => runMerge(multislerp, zero),
      (e) => e instanceof ParamError && /sum to 0/.test(e.message),
    );
  });
});
