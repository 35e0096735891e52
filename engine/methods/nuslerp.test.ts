import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { nuslerp } from "./nuslerp.js";
import { assertClose, loadReference, makeContext, runMerge } from "./test-context.js";

describe("nuslerp", () => {
  for (const c of loadReference("nuslerp.json")) {
    test(`matches mergekit's torch nuslerp (numpy fp32 re-typing): ${c.name}`, () => {
      assertClose(runMerge(nuslerp, c.ctx()), c.expected, 1e-6);
    });
  }

  test("t = w_B/(w_A+w_B): orthogonal unit vectors with weights 1:1 meet at 45 degrees (hand-computed)", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1, 0, 0, 0], params: { weight: 1 } },
        { model: "b", data: [0, 1, 0, 0], params: { weight: 1 } },
      ],
    });
    assertClose(runMerge(nuslerp, ctx), [Math.SQRT1_2, Math.SQRT1_2, 0, 0]);
  });

  test("row-wise and column-wise slerp differ on a 2x2 tensor (hand-computed)", () => {
    // A = [[1,0],[1,0]], B = [[1,0],[0,1]], weights 1:1 → t = 0.5.
    // Per row (row_wise false): row0 parallel → lerp [1,0]; row1 orthogonal → √½·[1,1].
    // Per column (row_wise true): col0 A=[1,1], B=[1,0]: θ = π/4, each coefficient
    //   c = sin(π/8)/sin(π/4) → c·[2,1]; col1 A = 0, B = [0,1]: θ = π/2 → √½·[0,1].
    const s = Math.SQRT1_2;
    const c = Math.sin(Math.PI / 8) / Math.sin(Math.PI / 4);
    const mk = (rowWise: boolean) =>
      makeContext({
        inputs: [
          { model: "a", data: [1, 0, 1, 0], params: { weight: 1 } },
          { model: "b", data: [1, 0, 0, 1], params: { weight: 1 } },
        ],
        shape: [2, 2],
        params: { nuslerp_flatten: false, nuslerp_row_wise: rowWise },
      });
    assertClose(runMerge(nuslerp, mk(false)), [1, 0, s, s]);
    assertClose(runMerge(nuslerp, mk(true)), [2 * c, 0, c, s]);
  });

  test("anti-parallel vectors at t = 0.5 cancel to zero, as in mergekit (sin(fp32 π) is not below 1e-8)", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1, 0, 0, 0], params: { weight: 1 } },
        { model: "b", data: [-1, 0, 0, 0], params: { weight: 1 } },
      ],
    });
    assertClose(runMerge(nuslerp, ctx), [0, 0, 0, 0]);
  });

  test("a zero task vector is not lerped: base + sin(tπ/2)·(B − base), as mergekit's normalize-by-clamp gives", () => {
    // A − base = 0 → cos = 0, θ = π/2; t = 0.5 → base + sin(π/4)·[2, 0]
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1, 1], params: { weight: 1 } },
        { model: "b", data: [3, 1], params: { weight: 1 } },
        { model: "base", data: [1, 1] },
      ],
      base: "base",
    });
    assertClose(runMerge(nuslerp, ctx), [1 + 2 * Math.SQRT1_2, 1]);
  });

  test("wrong model counts and missing weights are refused with ParamError", () => {
    const three = makeContext({ inputs: ["a", "b", "c"].map((m) => ({ model: m, data: [1], params: { weight: 1 } })) });
    assert.throws(
      () => runMerge(nuslerp, three),
      (e) => e instanceof ParamError && /exactly two models/.test(e.message),
    );
    const baseIsOne = makeContext({
      inputs: [
        { model: "a", data: [1], params: { weight: 1 } },
        { model: "b", data: [2], params: { weight: 1 } },
      ],
      base: "a",
    });
    assert.throws(
      () => runMerge(nuslerp, baseIsOne),
      (e) => e instanceof ParamError && /base model can not be one of the two/.test(e.message),
    );
    const noWeight = makeContext({
      inputs: [
        { model: "a", data: [1], params: { weight: 1 } },
        { model: "b", data: [2] },
      ],
    });
    assert.throws(
      () => runMerge(nuslerp, noWeight),
      (e) => e instanceof ParamError && /'b' has no weight/.test(e.message),
    );
  });

  test("declares mergekit's parameters", () => {
    assert.deepEqual(nuslerp.params.nuslerp_flatten, { kind: "bool", default: true, required: false });
    assert.deepEqual(nuslerp.params.nuslerp_row_wise, { kind: "bool", default: false, required: false });
    assert.equal(nuslerp.base, "optional");
  });
});
