import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { nearswap } from "./nearswap.js";
import { assertClose, makeContext, runMerge } from "./test-context.js";

describe("nearswap", () => {
  test("takes the other value where it is within t of the base and interpolates beyond (hand-computed)", () => {
    // base a, other b, t = 0.5: w = clamp(0.5/|a−b|, 0, 1)
    // |a−b| = [0.25, 0.5, 1, 2, 0]  → w = [1, 1, 0.5, 0.25, 1 (0.5/1e-6 clamped)]
    // w·b + (1−w)·a = [1.25, 2.5, 0.5·4+0.5·3, 0.25·6+0.75·4, 5]
    const ctx = makeContext({
      inputs: [
        { model: "base", data: [1, 2, 3, 4, 5] },
        { model: "x", data: [1.25, 2.5, 4, 6, 5] },
      ],
      base: "base",
      params: { t: 0.5 },
    });
    assertClose(runMerge(nearswap, ctx), [1.25, 2.5, 3.5, 4.5, 5]);
  });

  test("works the same when the base is listed after the other model", () => {
    // |a−b| = [4, 0.1]; t = 1 → w = [0.25, 1]: [0.25·(−2)+0.75·2, 1.1]
    const ctx = makeContext({
      inputs: [
        { model: "x", data: [-2, 1.1] },
        { model: "base", data: [2, 1] },
      ],
      base: "base",
      params: { t: 1 },
    });
    assertClose(runMerge(nearswap, ctx), [1, 1.1]);
  });

  test("t = 0 keeps the base everywhere except exact matches", () => {
    const ctx = makeContext({
      inputs: [
        { model: "base", data: [1, 2, 3] },
        { model: "x", data: [9, 2, -3] },
      ],
      base: "base",
      params: { t: 0 },
    });
    assertClose(runMerge(nearswap, ctx), [1, 2, 3]);
  });

  test("only the base present passes it through", () => {
    const out = runMerge(nearswap, makeContext({ inputs: [{ model: "base", data: [1, 2] }], base: "base", params: { t: 0.1 } }));
    assert.deepEqual(Array.from(out), [1, 2]);
  });

  test("a missing base, a third model or a missing t is refused with ParamError", () => {
    const noBase = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
      ],
      params: { t: 1 },
    });
    assert.throws(
      () => runMerge(nearswap, noBase),
      (e) => e instanceof ParamError && /base/.test(e.message),
    );
    const three = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
        { model: "c", data: [3] },
      ],
      base: "a",
      params: { t: 1 },
    });
    assert.throws(
      () => runMerge(nearswap, three),
      (e) => e instanceof ParamError && /exactly two/.test(e.message),
    );
    const noT = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
      ],
      base: "a",
    });
    assert.throws(
      () => runMerge(nearswap, noT),
      (e) => e instanceof ParamError && /parameter t/.test(e.message),
    );
  });

  test("declares t as a required global number and is elementwise", () => {
    assert.deepEqual(nearswap.params.t, { kind: "number", required: true });
    assert.equal(nearswap.base, "required");
    assert.equal(nearswap.elementwise, true);
  });
});
