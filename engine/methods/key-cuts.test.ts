import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { selectKey } from "./key-cuts.js";

const f32 = (xs: readonly number[]) => Float32Array.from(xs);

describe("selectKey", () => {
  test("finds the key at each position of the ascending order with its below/equal counts", () => {
    const x = f32([3, -1, 2, 2, -0, 5, 2]);
    const bits = new Uint32Array(x.buffer);
    const sorted = Array.from(x, Math.abs).sort((a, b) => a - b); // 0 1 2 2 2 3 5
    for (let r = 0; r < x.length; r++) {
      const s = selectKey(bits, r);
      assert.equal(new Float32Array(new Uint32Array([s.key]).buffer)[0], sorted[r], `position ${r}`);
      assert.equal(s.below, sorted.indexOf(sorted[r]));
      assert.equal(s.equal, sorted.filter((v) => v === sorted[r]).length);
    }
  });
});
