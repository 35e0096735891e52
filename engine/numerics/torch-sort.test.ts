// torch's CPU argsort order among equal keys, replayed (torch-sort.ts), against permutations and
// kept sets recorded from torch 1.13 and 2.13 (test/reference/torch/*.json): heavy ties, up to
// 1.2·10⁷ elements.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sortedRangeMask, torchArgsort } from "./torch-sort.js";
import { hashKeys, torchReferences } from "./torch-reference.js";

/** The large cases are the same arrays in every torch file: replay each once. */
const masks = new Map<string, string>();
const sha = (a: Uint8Array | Int32Array) =>
  createHash("sha256")
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest("hex");

for (const ref of torchReferences()) {
  describe(`argsort among ties equals torch ${ref.torch}`, () => {
    test("full permutations of arrays with 2 … 1000 distinct values (40 … 100 000 elements)", () => {
      for (const c of ref.data.sort_full) {
        const idx = torchArgsort(hashKeys(c.n, c.seed, c.d), c.descending);
        assert.equal(sha(idx), c.sha256, `n=${c.n} d=${c.d} descending=${c.descending}`);
      }
    });

    test("the set of elements in sorted positions [from, to), arrays up to 12 000 000 elements", () => {
      for (const c of ref.data.sort_prefix) {
        const key = JSON.stringify([c.n, c.seed, c.d, c.descending, c.from, c.to]);
        if (!masks.has(key)) masks.set(key, sha(sortedRangeMask(hashKeys(c.n, c.seed, c.d), c.descending, c.from, c.to)));
        assert.equal(masks.get(key), c.mask_sha256, `n=${c.n} d=${c.d} descending=${c.descending} [${c.from}, ${c.to})`);
      }
    });
  });
}

test("sortedRangeMask keeps exactly the elements the full replay puts in the range", () => {
  let seed = 7;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rnd() * 3000);
    const keys = Float32Array.from({ length: n }, () => Math.floor(rnd() * (1 + (trial % 9))));
    const desc = trial % 2 === 0;
    const from = Math.floor(rnd() * n);
    const to = from + Math.floor(rnd() * (n - from + 1));
    const order = torchArgsort(keys, desc);
    const want = new Uint8Array(n);
    for (let p = from; p < to; p++) want[order[p]] = 1;
    assert.deepEqual(sortedRangeMask(keys, desc, from, to), want, `trial ${trial}: n=${n} [${from}, ${to})`);
  }
});

test("NaN sorts as the largest key, as torch's comparators do", () => {
  assert.deepEqual([...torchArgsort([1, NaN, 3, 2], true)], [1, 2, 3, 0]);
  assert.deepEqual([...torchArgsort([1, NaN, 3, 2], false)], [0, 3, 2, 1]);
});
