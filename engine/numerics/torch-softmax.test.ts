// torch.softmax(x, dim=-1) as recorded from Debian's torch 1.13 and the torch 2.13 wheel
// (scripts/numerics/torch-softmax-reference.py): fp32 rows through the generic vectorized path,
// bf16/fp16 rows through the fp32-buffer path whose tail takes glibc's expf — 8 lanes on 1.13's
// AVX2 kernels, 16 on 2.x's AVX-512 ones. Rows of 1–131 values: every tail length.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { softmaxLastDim } from "./torch-softmax.js";
import { TORCH1, TORCH2, type TorchProfile } from "./torch-float.js";
import { f32s } from "./torch-reference.js";

type Ref = { torch: string; cases: { dtype: "F32" | "BF16" | "F16"; cols: number; x: string; softmax: string }[] };
function read(dir: string): Ref {
  const url = new URL(
    import.meta.url.includes("/dist/") ? `../../../test/reference/${dir}/softmax.json` : `../../test/reference/${dir}/softmax.json`,
    import.meta.url,
  );
  return JSON.parse(readFileSync(fileURLToPath(url), "utf8")) as Ref;
}

/** Every recorded row of `dir`'s torch build, bit for bit, in that build's profile. */
function checkAll(dir: string, version: string, profile: TorchProfile, cases: number): void {
  const ref = read(dir);
  assert.ok(ref.torch.startsWith(version));
  assert.equal(ref.cases.length, cases);
  for (const c of ref.cases) {
    const got = softmaxLastDim(profile, c.dtype, f32s(c.x), c.cols);
    assert.deepEqual([...got], [...f32s(c.softmax)], `${c.dtype} rows of ${c.cols}`);
  }
}

test("torch 1.13's softmax, fp32 and bf16, every row length, bit for bit", () => checkAll("torch1.13", "1.13", TORCH1, 20));

test("torch 2.x's softmax, fp32 (16-lane generic path), bf16 and fp16 (glibc expf tails), every row length, bit for bit", () =>
  checkAll("torch2", "2.", TORCH2, 30));
