import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { arceeFusion } from "./arcee-fusion.js";
import { assertClose, loadReference, makeContext, runMerge } from "./test-context.js";

describe("arcee_fusion", () => {
  for (const c of loadReference("arcee_fusion.json")) {
    test(`matches mergekit's arcee_fusion (numpy fp32 re-typing): ${c.name}`, () => {
      assertClose(runMerge(arceeFusion, c.ctx()), c.expected, 1e-6);
    });
  }

  test("identical models give the base (importance 0 ≥ threshold 0 takes a zero delta)", () => {
    const x = [0.1, -0.2, 0.3, 0.4];
    assertClose(
      runMerge(
        arceeFusion,
        makeContext({
          inputs: [
            { model: "base", data: x },
            { model: "x", data: x },
          ],
          base: "base",
        }),
      ),
      x,
    );
  });

  test("with a single changed element the quantiles are all 0, so the change is taken (hand-computed)", () => {
    // one row; deltas [0, 0, 0, 3]: importance = |δ|·KL → [0,0,0,>0]; median = q1 = q3 = 0 → threshold 0,
    // so every element passes, but only element 3 has a delta: result = x
    const ctx = makeContext({
      inputs: [
        { model: "base", data: [1, 1, 1, 1] },
        { model: "x", data: [1, 1, 1, 4] },
      ],
      base: "base",
    });
    assertClose(runMerge(arceeFusion, ctx), [1, 1, 1, 4]);
  });

  test("more than two models or no base is refused with ParamError", () => {
    const three = makeContext({ inputs: ["a", "b", "c"].map((m) => ({ model: m, data: [1] })), base: "a" });
    assert.throws(
      () => runMerge(arceeFusion, three),
      (e) => e instanceof ParamError && /exactly two models/.test(e.message),
    );
    const noBase = makeContext({ inputs: ["a", "b"].map((m) => ({ model: m, data: [1] })) });
    assert.throws(
      () => runMerge(arceeFusion, noBase),
      (e) => e instanceof ParamError && /base model is required/.test(e.message),
    );
  });
});
