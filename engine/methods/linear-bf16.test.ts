import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { decodeToF32, encodeFromF32 } from "../tensor/convert.js";
import { linear, mergeLinearBF16 } from "./linear.js";

/** Every bf16 bit pattern (NaNs, infs, ±0, subnormals) appears in each input, in shifted orders. */
function inputs(m: number): Uint16Array[] {
  return Array.from({ length: m }, (_, i) => {
    const a = new Uint16Array(65536 + 17);
    for (let k = 0; k < a.length; k++) a[k] = (k * (2 * i + 1) + 977 * i) & 0xffff;
    return a;
  });
}

function reference(srcs: Uint16Array[], weights: number[], normalize: boolean): Uint16Array {
  const ins = srcs.map((s, i) => ({ model: `m${i}`, params: { weight: weights[i] }, data: decodeToF32(new Uint8Array(s.buffer), "BF16") }));
  const out = linear.merge({ tensorName: "t", shape: [srcs[0].length], inputs: ins, baseIndex: -1, params: { normalize }, random: () => () => 0 });
  const bytes = encodeFromF32(out, "BF16");
  return new Uint16Array(bytes.buffer, bytes.byteOffset, out.length);
}

describe("mergeLinearBF16", () => {
  for (const [m, weights, normalize] of [
    [3, [0.5, 0.3, 0.2], true],
    [2, [1, -1], false],
    [4, [0.7, 0.1, 0.15, 0.33], true],
  ] as const) {
    test(`gives the same bytes as linear.merge plus bf16 rounding for ${m} inputs (normalize ${normalize})`, () => {
      const srcs = inputs(m);
      const out = new Uint16Array(srcs[0].length);
      mergeLinearBF16({ tensorName: "t", inputs: weights.map((w, i) => ({ model: `m${i}`, params: { weight: w } })), params: { normalize } }, srcs, out);
      const want = reference(srcs, [...weights], normalize);
      let diff = 0;
      for (let k = 0; k < out.length; k++) if (out[k] !== want[k]) diff++;
      assert.equal(diff, 0);
    });
  }
});
