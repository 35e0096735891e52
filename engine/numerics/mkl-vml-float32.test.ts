// MKL's float32 VML sin/cos/acos/ln (HA) and sdot, replayed from the torch 2.13 wheel's
// libtorch_cpu.so, against test/reference/torch2/mkl.json (scripts/numerics/mkl-reference.py):
// 4096 recorded inputs per function, 83 contiguous and 23 strided sdot vectors with 1, 2 and 4
// threads, bit for bit. SLEEF's
// routines (what torch uses without MKL) differ on some, so the recording tells the two apart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ParamError } from "../errors/index.js";
import { fma32, fma64, fma64Exact } from "./fma64.js";
import { mklAcosf, mklCosf, mklLogf, mklSdot, mklSdotStrided, mklSinf } from "./mkl-vml-float32.js";
import { torchAcosf, torchCosf, torchLogf, torchSinf } from "./sleef-float32.js";
import { fmaf } from "./numpy-float32-math.js";
import { f32s } from "./torch-reference.js";

type Ref = {
  torch: string;
  threads: number[];
  vml: Record<"sin" | "cos" | "acos" | "log", { x: string; y: string }>;
  sdot: { n: number; seed: number; scale: number; correlated: boolean; dot: number[] }[];
  sdotStrided: { n: number; incx: number; incy: number; seed: number; scale: number; dot: number[] }[];
};
const FILE = new URL(import.meta.url.includes("/dist/") ? "../../../test/reference/torch2/mkl.json" : "../../test/reference/torch2/mkl.json", import.meta.url);
const ref = JSON.parse(readFileSync(fileURLToPath(FILE), "utf8")) as Ref;

const FNS = {
  sin: [mklSinf, torchSinf],
  cos: [mklCosf, torchCosf],
  acos: [mklAcosf, torchAcosf],
  log: [mklLogf, torchLogf],
} as const;

for (const [name, [mkl, sleef]] of Object.entries(FNS)) {
  test(`MKL ${name}: every recorded input, bit for bit, and SLEEF differs on some`, () => {
    const x = f32s(ref.vml[name as keyof typeof FNS].x);
    const y = f32s(ref.vml[name as keyof typeof FNS].y);
    assert.equal(x.length, 4096);
    let sleefDiffers = 0;
    for (let i = 0; i < x.length; i++) {
      const got = mkl(x[i]);
      assert.ok(Object.is(got, y[i]) || (Number.isNaN(got) && Number.isNaN(y[i])), `${name}(${x[i]}): got ${got}, torch ${y[i]}`);
      if (Math.abs(x[i]) < 125 && !Object.is(sleef(x[i]), y[i])) sleefDiffers++; // SLEEF's replay stops at 125
    }
    assert.ok(sleefDiffers > 0, `SLEEF's ${name} agrees with MKL on every input: the recording does not tell them apart`);
  });
}

/** The script's xorshift32 vectors: (u/2³² − ½)·scale rounded to float32. */
function xorshift(seed: number, n: number, scale: number): [Float32Array, number] {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s ^ (s << 13)) >>> 0;
    s = (s ^ (s >>> 17)) >>> 0;
    s = (s ^ (s << 5)) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return [out, s];
}

test("MKL sdot: every recorded vector (lengths 1–40001), with 1, 2 and 4 threads, bit for bit", () => {
  assert.equal(ref.sdot.length, 83);
  let threadsMatter = 0;
  for (const v of ref.sdot) {
    const [x, s2] = xorshift(v.seed, v.n, v.scale);
    let [y] = xorshift((s2 ^ 0x5bd1e995) >>> 0, v.n, 1);
    if (v.correlated) y = y.map((yi, i) => x[i] * 0.75 + yi * 2 ** -10);
    ref.threads.forEach((t, k) => {
      const got = mklSdot(x, y, t);
      assert.ok(Object.is(got, v.dot[k]), `n = ${v.n}, ${t} threads: got ${got}, torch ${v.dot[k]}`);
    });
    if (v.dot[0] !== v.dot[1]) threadsMatter++;
  }
  assert.ok(threadsMatter > 0, "the thread count never changed a recorded sum: the split is not tested");
});

test("MKL sdot on strided views: every recorded vector, with 1, 2 and 4 threads, bit for bit", () => {
  assert.equal(ref.sdotStrided.length, 23);
  let pathMatters = 0;
  for (const v of ref.sdotStrided) {
    const [x, s2] = xorshift(v.seed, v.n * v.incx, v.scale);
    const [y] = xorshift((s2 ^ 0x5bd1e995) >>> 0, v.n * v.incy, 1);
    ref.threads.forEach((t, k) => {
      const got = mklSdotStrided(v.n, x, v.incx, y, v.incy, t);
      assert.ok(Object.is(got, v.dot[k]), `n = ${v.n}, strides ${v.incx}/${v.incy}, ${t} threads: got ${got}, torch ${v.dot[k]}`);
    });
    const gx = Float32Array.from({ length: v.n }, (_, i) => x[i * v.incx]);
    const gy = Float32Array.from({ length: v.n }, (_, i) => y[i * v.incy]);
    if (!Object.is(mklSdot(gx, gy), v.dot[0])) pathMatters++;
  }
  assert.ok(pathMatters > 0, "the contiguous kernel gives every strided sum: the scalar path is not tested");
});

test("MKL sin/cos/ln: inputs off the replayed paths are refused, specials answered", () => {
  assert.throws(() => mklSinf(10001), ParamError);
  assert.throws(() => mklCosf(-1e30), ParamError);
  assert.ok(Number.isNaN(mklSinf(NaN)));
  assert.ok(Number.isNaN(mklAcosf(1.5)));
  assert.equal(mklAcosf(1), 0);
  assert.equal(mklLogf(0), -Infinity);
  assert.equal(mklLogf(Infinity), Infinity);
  assert.ok(Number.isNaN(mklLogf(-1)));
  assert.equal(mklLogf(1), 0);
  assert.throws(() => mklSdot(new Float32Array(2), new Float32Array(3)), ParamError);
  assert.equal(mklSdot(new Float32Array(0), new Float32Array(0)), 0);
});

test("fma64 and fma32 round a·b + c once, as the integer reference does", () => {
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed / 2 ** 32 - 0.5) * 2 ** ((seed % 61) - 30);
  };
  for (let i = 0; i < 20000; i++) {
    const a = rnd();
    const b = rnd();
    const c = i % 2 ? rnd() : -(a * b) * (1 + (rnd() % 1) * 2 ** -40);
    assert.equal(fma64(a, b, c), fma64Exact(a, b, c), `fma64(${a}, ${b}, ${c})`);
    const [af, bf, cf] = [Math.fround(a), Math.fround(b), Math.fround(i % 2 ? c : -Math.fround(a) * Math.fround(b))];
    assert.equal(fma32(af, bf, cf), fmaf(af, bf, cf), `fma32(${af}, ${bf}, ${cf})`);
  }
  assert.equal(fma64(1 + 2 ** -52, 1 - 2 ** -52, -1), -(2 ** -104));
});
