// The torch-rounding primitives of `--numerics mergekit` against values computed with torch
// (test/reference/torch/*.json, from scripts/numerics/torch-reference.py with torch 1.13 and 2.13):
// every result must be bit-identical.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ComputeDType } from "./torch-float.js";
import { add, addScalar, div, divScalar, mul, mulScalar, norm, rdivScalar, roundTo, rsubScalar, sub, sumAll, sumDim0 } from "./torch-float.js";
import { f32s, torchReferences } from "./torch-reference.js";

/** Indices where got and want differ bitwise (NaN equals NaN). */
function differing(got: ArrayLike<number>, want: ArrayLike<number>): number[] {
  const bad: number[] = [];
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) bad.push(i);
  return bad;
}

test("weights become tensors of the dtype: 0.3 is 0.30078125 in bf16 and 0.300048828125 in fp16", () => {
  assert.equal(roundTo("BF16", 0.3), 0.30078125);
  assert.equal(roundTo("F16", 0.3), 0.300048828125);
  assert.equal(roundTo("F32", 0.3), Math.fround(0.3));
  // round to nearest even at the exact midpoint between two bf16 values
  assert.equal(roundTo("BF16", 1 + 2 ** -8), 1);
  assert.equal(roundTo("BF16", 1 + 3 * 2 ** -8), 1 + 2 ** -6);
});

for (const ref of torchReferences()) {
  const R = ref.data;
  describe(`torch-rounding primitives equal torch ${ref.torch} bit for bit`, () => {
    test("elementwise add, sub, mul, div of two bf16 / fp16 / fp32 tensors", () => {
      for (const c of R.elementwise) {
        const a = f32s(c.a);
        const b = f32s(c.b);
        for (const [op, f] of [
          ["add", add],
          ["sub", sub],
          ["mul", mul],
          ["div", div],
        ] as const) {
          const got = Array.from(a, (x, i) => f(c.dtype as ComputeDType, x, b[i]));
          assert.deepEqual(differing(got, f32s(c[op])), [], `${c.dtype} ${op}`);
        }
      }
    });

    test(`a Python float in * / + − and s/x (${ref.profile.scalarOpmath ? "fp32 opmath in * and /" : "cast to the dtype"})`, () => {
      for (const c of R.scalar_ops) {
        const a = f32s(c.a);
        const dt = c.dtype as ComputeDType;
        const s = c.scalar as number;
        const ops: Record<string, (x: number) => number> = {
          mul: (x) => mulScalar(ref.profile, dt, x, s),
          div: (x) => divScalar(ref.profile, dt, x, s),
          add: (x) => addScalar(dt, x, s),
          rsub: (x) => rsubScalar(dt, s, x),
          rdiv: (x) => rdivScalar(ref.profile, dt, s, x),
        };
        for (const [op, f] of Object.entries(ops)) assert.deepEqual(differing(Array.from(a, f), f32s(c[op])), [], `${dt} ${op} ${s}`);
      }
    });

    test("x.sum(), (a*b).sum() and torch.norm over 1 … 40 000 elements (fp32 accumulation, torch's cascade order)", () => {
      for (const c of R.sums) {
        const dt = c.dtype as ComputeDType;
        const x = f32s(c.x);
        const y = f32s(c.y);
        assert.equal(sumAll(dt, x), f32s(c.sum)[0], `${dt} sum of ${x.length}`);
        const prod = Float32Array.from(x, (v, i) => mul(dt, v, y[i]));
        assert.equal(sumAll(dt, prod), f32s(c.dot)[0], `${dt} dot of ${x.length}`);
        // torch 1.13 computes fp16 norms in a path mergeloom does not reproduce (mergekit mode targets torch 2.x)
        if (dt === "F16" && ref.profile.scalarOpmath === false) continue;
        assert.equal(norm(ref.profile, dt, x), f32s(c.norm)[0], `${dt} norm of ${x.length}`);
        assert.equal(norm(ref.profile, dt, x), f32s(c.norm_dim)[0], `${dt} norm(dim=-1) of ${x.length}`);
      }
    });

    test("stack(rows).sum(dim=0) for 2 … 17 rows (plain order up to 4 rows, cascade and 4-way interleaving beyond)", () => {
      for (const c of R.sum_dim0) {
        const x = f32s(c.x);
        const out = sumDim0(c.dtype as ComputeDType, c.rows, c.m, (r, j) => x[r * c.m + j], new Float32Array(c.m));
        assert.deepEqual(differing(out, f32s(c.sum)), [], `${c.dtype} ${c.rows}×${c.m}`);
        // the same columns computed in two chunks give the same sums
        const half = Math.floor(c.m / 2);
        const lo = sumDim0(c.dtype as ComputeDType, c.rows, half, (r, j) => x[r * c.m + j], new Float32Array(half), undefined, 0, c.m);
        const hi = sumDim0(c.dtype as ComputeDType, c.rows, c.m - half, (r, j) => x[r * c.m + half + j], new Float32Array(c.m - half), undefined, half, c.m);
        assert.deepEqual(differing([...lo, ...hi], f32s(c.sum)), [], `${c.dtype} ${c.rows}×${c.m} in two chunks`);
      }
    });
  });
}
