// torch.dot as Debian's torch 1.13 computes it (recorded by scripts/numerics/torch113-dot-reference.py):
// bf16 naive loop up to 4096 elements, oneDNN's blocked VDPBF16PS order above, reference BLAS sdot
// for fp32. The long bf16 cases sit within fp32 ulps of a bf16 rounding boundary, so the order is
// what decides them: an index-order fp32 sum must get some of them wrong (the test checks that too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { torchDot } from "./torch-dot.js";
import { TORCH1, TORCH2, roundTo } from "./torch-float.js";

const FILE = new URL(
  import.meta.url.includes("/dist/") ? "../../../test/reference/torch1.13/dot.json" : "../../test/reference/torch1.13/dot.json",
  import.meta.url,
);
const ref = JSON.parse(readFileSync(fileURLToPath(FILE), "utf8")) as {
  torch: string;
  cases: { dtype: "BF16" | "F32"; n: number; x: string; y: string; dot: number }[];
};

function values(dtype: "BF16" | "F32", b64: string): Float32Array {
  const b = Buffer.from(b64, "base64");
  if (dtype === "F32") return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const u = new Uint32Array(b.byteLength / 2);
  for (let i = 0; i < u.length; i++) u[i] = b.readUInt16LE(2 * i) << 16;
  return new Float32Array(u.buffer);
}

test("torch 1.13's dot: every recorded case, bit for bit", () => {
  assert.ok(ref.torch.startsWith("1.13"), `recorded with torch ${ref.torch}`);
  assert.ok(ref.cases.length >= 13);
  for (const c of ref.cases) {
    const got = torchDot(TORCH1, c.dtype, values(c.dtype, c.x), values(c.dtype, c.y));
    assert.equal(got, c.dot, `${c.dtype} dot of ${c.n} elements`);
  }
});

test("the long bf16 cases tell the accumulation order apart", () => {
  let wrong = 0;
  for (const c of ref.cases.filter((c) => c.dtype === "BF16" && c.n > 4096)) {
    const x = values("BF16", c.x);
    const y = values("BF16", c.y);
    let s = 0;
    for (let j = 0; j < c.n; j++) s = Math.fround(s + x[j] * y[j]);
    if (roundTo("BF16", s) !== c.dot) wrong++;
  }
  assert.ok(wrong > 0, "an index-order fp32 sum matches every case: the cases do not test the order");
});

test("torch 2.x's MKL dot and torch 1.13's missing fp16 dot are refused", () => {
  assert.throws(() => torchDot(TORCH2, "F32", [1], [1]), /MKL's sdot.*--numerics default/);
  assert.throws(() => torchDot(TORCH1, "F16", [1], [1]), /no float16 dot/);
});
