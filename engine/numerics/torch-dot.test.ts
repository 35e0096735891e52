// torch.dot as recorded by scripts/numerics/torch-dot-reference.py. Debian's torch 1.13: bf16 naive
// loop up to 4096 elements, oneDNN's blocked VDPBF16PS order above, reference BLAS sdot for fp32.
// The torch 2.x wheel: bf16/fp16 by its AVX-512 *_dot_with_fp32_arith. The long cases sit within
// fp32 ulps of a rounding boundary of the dtype, so the order decides them: an index-order fp32
// sum must get some of them wrong (the tests check that too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { torchDot } from "./torch-dot.js";
import { TORCH1, TORCH2, roundTo } from "./torch-float.js";

type Ref = { torch: string; cases: { dtype: "BF16" | "F16" | "F32"; n: number; x: string; y: string; dot: number }[] };
function read(dir: string): Ref {
  const url = new URL(import.meta.url.includes("/dist/") ? `../../../test/reference/${dir}/dot.json` : `../../test/reference/${dir}/dot.json`, import.meta.url);
  return JSON.parse(readFileSync(fileURLToPath(url), "utf8")) as Ref;
}
const ref = read("torch1.13");

function halfToFloat(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

function values(dtype: "BF16" | "F16" | "F32", b64: string): Float32Array {
  const b = Buffer.from(b64, "base64");
  if (dtype === "F32") return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  if (dtype === "F16") return Float32Array.from({ length: b.byteLength / 2 }, (_, i) => halfToFloat(b.readUInt16LE(2 * i)));
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

test("torch 2.x's bf16/fp16 dot (AVX-512 *_dot_with_fp32_arith; oneDNN's fp16 matmul above 4096): every recorded case, bit for bit", () => {
  const r = read("torch2");
  assert.ok(r.torch.startsWith("2."));
  assert.equal(r.cases.length, 21);
  let seqWrong = 0;
  for (const c of r.cases) {
    const x = values(c.dtype, c.x);
    const y = values(c.dtype, c.y);
    assert.equal(torchDot(TORCH2, c.dtype, x, y), c.dot, `${c.dtype} dot of ${c.n} elements`);
    let s = 0;
    for (let j = 0; j < c.n; j++) s = Math.fround(s + x[j] * y[j]);
    if (roundTo(c.dtype, s) !== c.dot) seqWrong++;
  }
  assert.ok(seqWrong > 0, "an index-order sum matches every case: the cases do not test the order");
});

test("torch 1.13's missing fp16 dot and torch 2.x's AMX bf16 dot are refused", () => {
  assert.throws(() => torchDot(TORCH2, "BF16", new Float32Array(4097), new Float32Array(4097)), /oneDNN's AMX kernel/);
  assert.throws(() => torchDot(TORCH1, "F16", new Float32Array(1), new Float32Array(1)), /no float16 dot/);
});
