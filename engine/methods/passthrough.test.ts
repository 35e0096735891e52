import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { passthrough } from "./passthrough.js";
import { makeContext, runMerge } from "./test-context.js";

describe("passthrough", () => {
  test("copies the single input unchanged when no scale is set", () => {
    const data = [1.5, -2, 0, 3.25];
    const ctx = makeContext({ inputs: [{ model: "a", data }] });
    const out = runMerge(passthrough, ctx);
    assert.deepEqual(Array.from(out), data);
    assert.notEqual(out, ctx.inputs[0].data, "the output is a new array, not the input buffer");
  });

  test("multiplies by the model's scale", () => {
    const out = runMerge(passthrough, makeContext({ inputs: [{ model: "a", data: [1, -2, 0.5, 4], params: { scale: 0.5 } }] }));
    assert.deepEqual(Array.from(out), [0.5, -1, 0.25, 2]);
  });

  test("scale 0 zeroes the tensor (layer removal trick)", () => {
    const out = runMerge(passthrough, makeContext({ inputs: [{ model: "a", data: [1, -2, 3, 4], params: { scale: 0 } }] }));
    assert.deepEqual(
      Array.from(out, (x) => Math.abs(x)),
      [0, 0, 0, 0],
    );
  });

  test("more than one input is refused with a ParamError listing the models", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
      ],
    });
    assert.throws(
      () => runMerge(passthrough, ctx),
      (e) => e instanceof ParamError && /exactly one model/.test(e.message) && /a, b/.test(e.message),
    );
  });

  test("scale is an optional per-model number and the method is elementwise", () => {
    assert.deepEqual(passthrough.modelParams.scale, { kind: "number", required: false });
    assert.equal(passthrough.elementwise, true);
  });
});
