// glibc's expf (2.36, the FMA variant x86-64 libm picks) replayed: 8192 inputs recorded from this
// machine's libm (scripts/numerics/glibc-expf-dump.c), bit for bit; SLEEF's expf differs on some,
// so the recording tells the two apart. The double FMA is checked on cases where a·b + c rounded twice differs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fma64 } from "./fma64.js";
import { glibcExpf } from "./glibc-expf.js";
import { torchExpf } from "./sleef-float32.js";

const FILE = new URL(import.meta.url.includes("/dist/") ? "../../../test/reference/glibc/expf.json" : "../../test/reference/glibc/expf.json", import.meta.url);

test("glibc expf: every recorded input, bit for bit", () => {
  const ref = JSON.parse(readFileSync(fileURLToPath(FILE), "utf8")) as { pairs: string };
  const b = Buffer.from(ref.pairs, "base64");
  const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  assert.equal(f.length, 2 * 8192);
  let sleefDiffers = 0;
  for (let i = 0; i < f.length; i += 2) {
    assert.ok(Object.is(glibcExpf(f[i]), f[i + 1]), `expf(${f[i]}): got ${glibcExpf(f[i])}, libm ${f[i + 1]}`);
    if (f[i] > -87 && !Object.is(torchExpf(f[i]), f[i + 1])) sleefDiffers++;
  }
  assert.ok(sleefDiffers > 0, "SLEEF's expf agrees with glibc on every input: the recording does not tell them apart");
});

test("glibc expf: special values", () => {
  assert.equal(glibcExpf(0), 1);
  assert.equal(glibcExpf(-Infinity), 0);
  assert.equal(glibcExpf(Infinity), Infinity);
  assert.ok(Number.isNaN(glibcExpf(NaN)));
  assert.equal(glibcExpf(89), Infinity);
  assert.equal(glibcExpf(-104), 0);
  assert.equal(glibcExpf(-103.5), 2 ** -149);
});

test("fma64 rounds a·b + c once", () => {
  // (1 + 2^-52)(1 - 2^-52) = 1 - 2^-104: a separate multiply rounds it to 1
  const a = 1 + 2 ** -52;
  const b = 1 - 2 ** -52;
  assert.equal(a * b - 1, 0);
  assert.equal(fma64(a, b, -1), -(2 ** -104));
  assert.equal(fma64(3, 5, 7), 22);
  assert.equal(fma64(0.1, 10, -1), 5.551115123125783e-17);
});
