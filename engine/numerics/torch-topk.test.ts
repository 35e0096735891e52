// torch.var over dim 0 and the set torch.topk(largest=True) picks among ties, as mergekit's sce
// mask uses them, against torch 2.13 (scripts/numerics/sce-reference.py → test/reference/sce/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../testing/repo-paths.js";
import { f32s, hashKeys } from "./torch-reference.js";
import { topkLargestMask } from "./torch-topk.js";
import { varDim0 } from "./torch-var.js";
import type { ComputeDType } from "./torch-float.js";

const ref = JSON.parse(readFileSync(join(repoRoot(), "test", "reference", "sce", "torch-2.13.json"), "utf8"));
const DT: Record<string, ComputeDType> = { float32: "F32", bfloat16: "BF16", float16: "F16" };

test("torch.var(stack, dim=0, unbiased=False): float64 Welford per column, rounded to the dtype", () => {
  for (const c of ref.var) {
    const x = f32s(c.x);
    const want = f32s(c.var);
    const m = want.length;
    const got = varDim0(DT[c.dtype], c.n, m, (r, j) => x[r * m + j]);
    const bad = [...got].filter((v, j) => v !== want[j]).length;
    assert.equal(bad, 0, `${c.dtype} N=${c.n}: ${bad}/${m} differ`);
  }
});

test("torch.topk(largest=True) among heavy ties: the same set as torch (partial_sort and nth_element paths, up to 3e6 elements)", () => {
  let discriminating = 0;
  for (const c of ref.topk) {
    const keys = hashKeys(c.n, c.seed, c.d);
    const mask = topkLargestMask(c.n, (j) => keys[j], c.k);
    const idx = new Int32Array(c.k);
    let q = 0;
    for (let j = 0; j < c.n; j++) if (mask[j]) idx[q++] = j;
    assert.equal(q, c.k);
    assert.equal(createHash("sha256").update(Buffer.from(idx.buffer)).digest("hex"), c.sha256, `n=${c.n} k=${c.k}`);
    // lowest-index-first among ties picks another set in most cases: the test discriminates
    if (c.n < 100000) {
      const order = [...keys.keys()]
        .sort((a, b) => keys[b] - keys[a] || a - b)
        .slice(0, c.k)
        .sort((a, b) => a - b);
      if (
        createHash("sha256")
          .update(Buffer.from(Int32Array.from(order).buffer))
          .digest("hex") !== c.sha256
      )
        discriminating++;
    }
  }
  assert.ok(discriminating >= 5, `only ${discriminating} cases where torch's set differs from lowest-index-first`);
});
