import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ParamError } from "../errors/index.js";
import { slerp } from "./slerp.js";
import { assertClose, makeContext, runMerge } from "./test-context.js";

interface Case {
  name: string;
  base: number[];
  other: number[];
  t: number;
  shape: number[];
  expected: number[];
}
const ref = JSON.parse(readFileSync(new URL("./reference/slerp.json", import.meta.url), "utf8")) as { cases: Case[] };

function ctx(base: number[], other: number[], t: number, opts: { baseFirst?: boolean; shape?: number[] } = {}) {
  const b = { model: "base", data: base };
  const o = { model: "other", data: other };
  return makeContext({ inputs: opts.baseFirst === false ? [o, b] : [b, o], base: "base", params: { t }, shape: opts.shape });
}

describe("slerp", () => {
  for (const c of ref.cases) {
    test(`matches mergekit's numpy slerp: ${c.name}`, () => {
      assertClose(runMerge(slerp, ctx(c.base, c.other, c.t, { shape: c.shape })), c.expected, 1e-6);
    });
  }

  test("orthogonal unit vectors at t=0.5 meet at 45 degrees (hand-computed: sin(π/4)/sin(π/2) = √½)", () => {
    const s = Math.SQRT1_2;
    assertClose(runMerge(slerp, ctx([1, 0, 0, 0], [0, 1, 0, 0], 0.5)), [s, s, 0, 0], 1e-6);
  });

  test("t=0.25 on orthogonal vectors of norm 2 weights them by cos(π/8) and sin(π/8)", () => {
    // θ = π/2, sinθ = 1: coefficients sin(3π/8) on the base and sin(π/8) on the other
    const out = runMerge(slerp, ctx([2, 0, 0, 0], [0, 2, 0, 0], 0.25));
    assertClose(out, [2 * Math.sin((3 * Math.PI) / 8), 2 * Math.sin(Math.PI / 8), 0, 0], 1e-6);
  });

  test("parallel vectors are lerped on the unnormalized tensors", () => {
    // cos = 1 > 0.9995 → (1−t)·v0 + t·v1 = 0.75·[1,2,3,4] + 0.25·[2,4,6,8]
    assertClose(runMerge(slerp, ctx([1, 2, 3, 4], [2, 4, 6, 8], 0.25)), [1.25, 2.5, 3.75, 5], 1e-6);
  });

  test("anti-parallel vectors are lerped too (|cos| > 0.9995)", () => {
    // 0.5·[1,2,3,4] + 0.5·[-3,-6,-9,-12] = [-1,-2,-3,-4]
    assertClose(runMerge(slerp, ctx([1, 2, 3, 4], [-3, -6, -9, -12], 0.5)), [-1, -2, -3, -4], 1e-6);
  });

  test("the base is the t=0 end wherever it sits among the inputs", () => {
    const out = runMerge(slerp, ctx([1, 0, 0, 0], [0, 3, 0, 0], 0, { baseFirst: false }));
    assertClose(out, [1, 0, 0, 0], 1e-6);
    const out1 = runMerge(slerp, ctx([1, 0, 0, 0], [0, 3, 0, 0], 1, { baseFirst: false }));
    assertClose(out1, [0, 3, 0, 0], 1e-6);
  });

  test("a tensor present in only one model passes through unchanged", () => {
    const out = runMerge(slerp, makeContext({ inputs: [{ model: "base", data: [1, 2] }], base: "base", params: { t: 0.5 } }));
    assert.deepEqual(Array.from(out), [1, 2]);
  });

  test("three models, a missing base or a missing t are refused with ParamError", () => {
    const three = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
        { model: "c", data: [3] },
      ],
      base: "a",
      params: { t: 0.5 },
    });
    assert.throws(
      () => runMerge(slerp, three),
      (e) => e instanceof ParamError && /exactly two models/.test(e.message),
    );
    const noBase = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
      ],
      params: { t: 0.5 },
    });
    assert.throws(
      () => runMerge(slerp, noBase),
      (e) => e instanceof ParamError && /base/.test(e.message),
    );
    const noT = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
      ],
      base: "a",
    });
    assert.throws(
      () => runMerge(slerp, noT),
      (e) => e instanceof ParamError && /parameter t/.test(e.message),
    );
  });
});
