// numpy's float32 arccos/sin, np.sum and np.linalg.norm as mergekit's slerp calls them, against
// values recorded from numpy 1.24 (Debian python3-numpy, AVX-512) by
// scripts/numerics/numpy-reference.py into test/reference/numpy/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../testing/repo-paths.js";
import { numpyAcosf, numpySinf, fmaf } from "./numpy-float32-math.js";
import { numpySumF32, referenceSdotSelf } from "./mergekit-slerp.js";
import { rsqrt14 } from "./rsqrt14.js";

const ref = JSON.parse(readFileSync(join(repoRoot(), "test", "reference", "numpy", "numpy-1.24.json"), "utf8"));
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const fromBits = (b: number): number => ((u32[0] = b), f32[0]);
const toBits = (x: number): number => ((f32[0] = x), u32[0]);

function hashed(n: number, salt: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ((Math.imul(i, 2654435761) + salt) >>> 0) / 2 ** 32 - 0.5;
  return out;
}

test("np.arccos (float32, SVML) bit for bit, including the VRSQRT14 path near 1", () => {
  const { x, y } = ref.arccos;
  const bad = x.filter((b: number, i: number) => toBits(numpyAcosf(fromBits(b))) !== y[i]);
  assert.equal(bad.length, 0, `${bad.length}/${x.length} differ, first at x=${fromBits(bad[0])}`);
  // numpy's arccos is not the correctly rounded one, so this test does discriminate
  assert.ok(x.some((b: number, i: number) => toBits(Math.fround(Math.acos(fromBits(b)))) !== y[i]));
});

test("np.sin (float32, numpy's SIMD routine) bit for bit", () => {
  const { x, y } = ref.sin;
  const bad = x.filter((b: number, i: number) => toBits(numpySinf(fromBits(b))) !== y[i]);
  assert.equal(bad.length, 0, `${bad.length}/${x.length} differ`);
  assert.ok(x.some((b: number, i: number) => toBits(Math.fround(Math.sin(fromBits(b)))) !== y[i]));
});

test("np.sum and np.linalg.norm of float32 arrays (1-D and 2-D, up to 2^22 elements) bit for bit", () => {
  for (const s of ref.sums) {
    const n = s.shape.reduce((a: number, b: number) => a * b, 1);
    const a = hashed(n, s.salt);
    assert.equal(toBits(numpySumF32((i) => a[i], n)), s.sum, `np.sum of shape ${s.shape}`);
    assert.equal(toBits(Math.fround(Math.sqrt(referenceSdotSelf(a)))), s.norm, `np.linalg.norm of shape ${s.shape}`);
  }
});

test("fmaf rounds a·b + c once, to the float32 nearest the exact value", () => {
  let seed = 7;
  const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed / 2 ** 32);
  const fix = (v: number): bigint => BigInt(v * 2 ** 120); // exact: every value here has its lsb ≥ 2^-120
  const abs = (v: bigint): bigint => (v < 0n ? -v : v);
  for (let k = 0; k < 2000; k++) {
    const x = Math.fround(rnd() * 4 - 2);
    const y = Math.fround(rnd() * 4 - 2);
    const z = Math.fround(-(x * y) + (rnd() - 0.5) * 2 ** -20); // near cancellation: where one rounding matters
    const got = fmaf(x, y, z);
    const exact = fix(x * y) + fix(z); // x·y is exact in double
    const err = abs(exact - fix(got));
    for (const nb of [fromBits(toBits(got) - 1), fromBits(toBits(got) + 1)]) assert.ok(err <= abs(exact - fix(nb)), `fmaf(${x}, ${y}, ${z}) = ${got}`);
  }
});

test("VRSQRT14: hardware's results at powers of two and within 2^-14 elsewhere", () => {
  assert.equal(rsqrt14(1), 1);
  assert.equal(rsqrt14(0.25), 2);
  assert.equal(toBits(rsqrt14(0.5)), toBits(0x16a05 / 0x10000));
  for (const y of [0.3, 0.5000001, 0.9999, 1e-6, 3e-20, 1.7, 123.25]) assert.ok(Math.abs(rsqrt14(y) * Math.sqrt(y) - 1) < 2 ** -14, `rsqrt14(${y})`);
});
