// torch's sin/cos/acos as `--numerics mergekit` replays them (SLEEF's 1.0-ulp AVX-512 routines),
// and the fp16 2-norm, against values recorded from the oracle's torch 2.13 wheel by
// scripts/numerics/sleef-reference.py into test/reference/sleef/: SLEEF called in torch's own
// libtorch_cpu.so, torch's bf16/fp16 ops, and torch's fp32 ops (MKL's VML, not replayed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../testing/repo-paths.js";
import { torchAcosf, torchCosf, torchExpf, torchLogf, torchSinf } from "./sleef-float32.js";
import { softmaxLastDim } from "./torch-softmax.js";
import { norm, roundTo, TORCH2, type ComputeDType } from "./torch-float.js";
import { f32s } from "./torch-reference.js";
import { f16BitsToF32 } from "../tensor/convert.js";

const ref = JSON.parse(readFileSync(join(repoRoot(), "test", "reference", "sleef", "torch-2.13.json"), "utf8"));
const OPS = { sin: torchSinf, cos: torchCosf, acos: torchAcosf } as const;
const same = (a: number, b: number): boolean => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

for (const [op, fn] of Object.entries(OPS)) {
  test(`torch.${op}: SLEEF's Sleef_${op}f16_u10 bit for bit, which torch's fp32 (MKL) is not`, () => {
    const x = f32s(ref.sleef[op].x);
    const y = f32s(ref.sleef[op].y);
    const bad = [...x].filter((v, i) => !same(fn(v), y[i]));
    assert.equal(bad.length, 0, `${bad.length}/${x.length} differ, first at x=${bad[0]}`);
    // correctly rounded values and torch's fp32 op both differ from SLEEF somewhere: the test discriminates
    const mkl = f32s(ref.mkl_f32[op].y);
    assert.ok(mkl.some((v, i) => !same(v, y[i])));
    assert.ok([...x].some((v, i) => !same(Math.fround(Math[op as "sin"](v)), y[i])));
  });

  for (const dt of ["BF16", "F16"] as ComputeDType[]) {
    test(`torch.${op} on ${dt} tensors: SLEEF on the widened value, rounded to ${dt}`, () => {
      const x = f32s(ref.reduced[dt][op].x);
      const y = f32s(ref.reduced[dt][op].y);
      const bad = [...x].filter((v, i) => !same(roundTo(dt, fn(v)), y[i]));
      assert.equal(bad.length, 0, `${bad.length}/${x.length} differ, first at x=${bad[0]}`);
    });
  }
}

for (const [op, fn] of Object.entries({ exp: torchExpf, log: torchLogf })) {
  test(`${op} as torch's Vectorized<float>::${op}: SLEEF's Sleef_${op}f16_u10 bit for bit`, () => {
    const x = f32s(ref.sleef[op].x);
    const y = f32s(ref.sleef[op].y);
    const bad = [...x].filter((v, i) => !same(fn(v), y[i]));
    assert.equal(bad.length, 0, `${bad.length}/${x.length} differ, first at x=${bad[0]}`);
    assert.ok(
      [...x].some((v, i) => !same(Math.fround(Math[op as "exp"](v)), y[i])),
      "SLEEF is not the correctly rounded function",
    );
  });
}

test("torch.softmax(dim=-1) and torch.log of bf16/fp16 tensors bit for bit", () => {
  for (const c of ref.softmax) {
    const x = f32s(c.x);
    const y = f32s(c.y);
    const got = softmaxLastDim(TORCH2, c.dtype, x, c.cols);
    assert.equal([...got].filter((v, i) => v !== y[i]).length, 0, `softmax ${c.dtype} rows of ${c.cols}`);
    const lx = f32s(c.log_x);
    const ly = f32s(c.log_y);
    assert.equal([...lx].filter((v, i) => roundTo(c.dtype, torchLogf(v)) !== ly[i]).length, 0, `log ${c.dtype}`);
  }
});

test("SLEEF's long argument reduction (|x| ≥ 125) is refused, not approximated", () => {
  assert.throws(() => torchSinf(200), /125/);
  assert.throws(() => torchCosf(-1e6), /125/);
});

test("torch.norm of fp16 vectors: one sequential fp32 accumulator (the vectorized order rounds differently here)", () => {
  for (const c of ref.half_norm) {
    const b = Buffer.from(c.x_f16, "base64");
    const x = Float32Array.from({ length: b.length / 2 }, (_, i) => roundTo("F16", f16BitsToF32(b.readUInt16LE(2 * i))));
    assert.equal(norm(TORCH2, "F16", x), c.norm, `n=${x.length}`);
    // the bf16-style vectorized order gives another fp16 value on these inputs
    assert.notEqual(norm({ ...TORCH2, halfNormSequential: false }, "F16", x), c.norm);
  }
});
