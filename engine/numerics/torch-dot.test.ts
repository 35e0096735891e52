// torch.dot as recorded by scripts/numerics/torch-dot-reference.py. Debian's torch 1.13: bf16 naive
// loop up to 4096 elements, oneDNN's blocked VDPBF16PS order above, reference BLAS sdot for fp32.
// The torch 2.x wheel: bf16/fp16 by its AVX-512 *_dot_with_fp32_arith up to 4096 elements, oneDNN's
// matmul above (fp16: blocks of 512; bf16: the AMX kernel, in K chunks). The long cases sit within
// fp32 ulps of a rounding boundary of the dtype, so the order decides them: an index-order fp32
// sum must get some of them wrong (the tests check that too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { amxBf16Dot, amxKChunk, torchDot } from "./torch-dot.js";
import { TORCH1, TORCH2, roundTo } from "./torch-float.js";
import { f16BitsToF32 } from "../tensor/convert.js";

type Gen = { seed: number; patch: [number, number][] };
type Case = { dtype: "BF16" | "F16" | "F32"; n: number; x?: string; y?: string; gen?: Gen; dot: number };
type Ref = { torch: string; cases: Case[] };
function read(dir: string): Ref {
  const url = new URL(import.meta.url.includes("/dist/") ? `../../../test/reference/${dir}/dot.json` : `../../test/reference/${dir}/dot.json`, import.meta.url);
  return JSON.parse(readFileSync(fileURLToPath(url), "utf8")) as Ref;
}
const ref = read("torch1.13");
const torch2 = read("torch2");

function values(dtype: "BF16" | "F16" | "F32", b64: string): Float32Array {
  const b = Buffer.from(b64, "base64");
  if (dtype === "F32") return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  if (dtype === "F16") return Float32Array.from({ length: b.byteLength / 2 }, (_, i) => f16BitsToF32(b.readUInt16LE(2 * i)));
  const u = new Uint32Array(b.byteLength / 2);
  for (let i = 0; i < u.length; i++) u[i] = b.readUInt16LE(2 * i) << 16;
  return new Float32Array(u.buffer);
}

/** Bits of a 16-bit float as a number. */
const bf16ToFloat = (b: number): number => new Float32Array(new Uint32Array([b << 16]).buffer)[0];
const bitsToFloat = (dtype: "BF16" | "F16", b: number): number => (dtype === "BF16" ? bf16ToFloat(b) : f16BitsToF32(b));

/** The generated vectors of a case (xorshift32 stream, then the patch): see the reference script. */
function generated(dtype: "BF16" | "F16", n: number, gen: Gen): [Float32Array, Float32Array] {
  const xy = new Float32Array(2 * n);
  let s = gen.seed >>> 0;
  for (let i = 0; i < 2 * n; i++) {
    s = (s ^ (s << 13)) >>> 0;
    s ^= s >>> 17;
    s = (s ^ (s << 5)) >>> 0;
    const b =
      dtype === "BF16"
        ? ((s >>> 31) << 15) | ((127 - 6 - ((s >>> 8) & 7)) << 7) | (s & 0x7f)
        : ((s >>> 31) << 15) | ((15 - 6 - ((s >>> 8) & 7)) << 10) | (s & 0x3ff);
    xy[i] = bitsToFloat(dtype, b);
  }
  const x = Float32Array.from({ length: n }, (_, i) => xy[2 * i]);
  const y = Float32Array.from({ length: n }, (_, i) => xy[2 * i + 1]);
  for (const [k, yb] of gen.patch) {
    x[k] = 1;
    y[k] = bitsToFloat(dtype, yb);
  }
  return [x, y];
}

const made = new Map<Case, [Float32Array, Float32Array]>();
function vectors(c: Case): [Float32Array, Float32Array] {
  let v = made.get(c);
  if (!v) {
    v = c.gen ? generated(c.dtype as "BF16" | "F16", c.n, c.gen) : [values(c.dtype, c.x ?? ""), values(c.dtype, c.y ?? "")];
    made.set(c, v);
  }
  return v;
}

test("torch 1.13's dot: every recorded case, bit for bit", () => {
  assert.ok(ref.torch.startsWith("1.13"), `recorded with torch ${ref.torch}`);
  assert.ok(ref.cases.length >= 13);
  for (const c of ref.cases) {
    const got = torchDot(TORCH1, c.dtype, ...vectors(c));
    assert.equal(got, c.dot, `${c.dtype} dot of ${c.n} elements`);
  }
});

test("the long bf16 cases tell the accumulation order apart", () => {
  let wrong = 0;
  for (const c of ref.cases.filter((c) => c.dtype === "BF16" && c.n > 4096)) {
    const [x, y] = vectors(c);
    let s = 0;
    for (let j = 0; j < c.n; j++) s = Math.fround(s + x[j] * y[j]);
    if (roundTo("BF16", s) !== c.dot) wrong++;
  }
  assert.ok(wrong > 0, "an index-order fp32 sum matches every case: the cases do not test the order");
});

test("torch 2.x's bf16/fp16 dot (AVX-512 *_dot_with_fp32_arith; oneDNN's fp16 and AMX bf16 matmul above 4096): every recorded case, bit for bit", () => {
  const r = torch2;
  assert.ok(r.torch.startsWith("2."));
  assert.equal(r.cases.length, 37);
  let seqWrong = 0;
  for (const c of r.cases) {
    const [x, y] = vectors(c);
    assert.equal(torchDot(TORCH2, c.dtype, x, y), c.dot, `${c.dtype} dot of ${c.n} elements`);
    let s = 0;
    for (let j = 0; j < c.n; j++) s = Math.fround(s + x[j] * y[j]);
    if (roundTo(c.dtype, s) !== c.dot) seqWrong++;
  }
  assert.ok(seqWrong > 0, "an index-order sum matches every case: the cases do not test the order");
});

/** One TDPBF16PS-sized block order that is not the instruction's: 32 elements in index order. */
function blocks32(x: Float32Array, y: Float32Array, chunk: number): number {
  let total = 0;
  for (let c0 = 0; c0 < x.length; c0 += chunk) {
    let acc = 0;
    for (let t = c0; t < Math.min(x.length, c0 + chunk); t += 32) {
      let s = 0;
      for (let j = t; j < Math.min(x.length, c0 + chunk, t + 32); j++) s = Math.fround(s + x[j] * y[j]);
      acc = Math.fround(acc + s);
    }
    total = Math.fround(total + acc);
  }
  return roundTo("BF16", total);
}

test("the AMX bf16 cases tell TDPBF16PS's even/odd sums and oneDNN's K chunks apart", () => {
  const amx = torch2.cases.filter((c) => c.dtype === "BF16" && c.n > 4096);
  assert.ok(amx.length >= 16);
  let plainWrong = 0;
  let unchunkedWrong = 0;
  for (const c of amx) {
    const [x, y] = vectors(c);
    if (blocks32(x, y, amxKChunk(c.n)) !== c.dot) plainWrong++;
    if (amxKChunk(c.n) < c.n && roundTo("BF16", amxBf16Dot(x, y, c.n)) !== c.dot) unchunkedWrong++;
  }
  assert.ok(plainWrong > 0, "32-element blocks in index order match every AMX case: the cases do not test TDPBF16PS's order");
  assert.ok(unchunkedWrong > 0, "the AMX order without K chunks matches every case: the cases do not test the chunks");
});

test("oneDNN's K chunks of the AMX bf16 dot (2 MiB L2), as its JIT kernels showed", () => {
  // K → chunk, from scripts/numerics/onednn-amx-kchunks.sh (torch 2.13, oneDNN 3.12, one thread)
  const seen: [number, number][] = [
    [4097, 4097],
    [262143, 131072],
    [262144, 262144],
    [262145, 262145],
    [300001, 150016],
    [333344, 333344],
    [333345, 166688],
    [400000, 200000],
    [500000, 500000],
    [524287, 262144],
    [524288, 524288],
    [524320, 174784],
    [700000, 233344],
    [1000000, 250016],
    [1048576, 262144],
    [2000000, 250016],
    [16777216, 262144],
  ];
  for (const [k, chunk] of seen) assert.equal(amxKChunk(k), chunk, `K = ${k}`);
});

test("the AMX bf16 dot flushes a subnormal sum of K chunks to 0 (torch 2.13: 0, where the exact sum is 2^-127)", () => {
  const n = 262143; // two chunks of 131072
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  [x[0], y[0], x[131072], y[131072]] = [2 ** -62, 2 ** -63, -1.5 * 2 ** -63, 2 ** -63];
  assert.equal(amxKChunk(n), 131072);
  assert.equal(torchDot(TORCH2, "BF16", x, y), 0);
  x[131072] = -1.5 * 2 ** -62; // a normal sum stays
  assert.equal(torchDot(TORCH2, "BF16", x, y), -(2 ** -126));
});

test("torch 1.13's missing fp16 dot is refused", () => {
  assert.throws(() => torchDot(TORCH1, "F16", new Float32Array(1), new Float32Array(1)), /no float16 dot/);
});
