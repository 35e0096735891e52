/**
 * A merged tensor holding NaN/±inf that no input held fails naming tensor and method; inputs that
 * already hold NaN/inf keep mergekit's result with one warning (issue 9 item 5). Every output path
 * is tried: the fused bf16 linear kernel, the TypeScript whole-tensor path, the streamed path
 * (fp32 apply and the bf16 kernel apply).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DType } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { TensorTask } from "@mergeloom/proto/merge-task";
import { createDefaultRegistry } from "../methods/all-methods.js";
import { mergeTensor } from "./merge-tensor.js";
import type { ParamValue } from "../methods/params.js";
import { TensorIO } from "./tensor-io.js";
import { hasNonFinite } from "../tensor/non-finite.js";

const SHAPE = [64, 48];
const N = SHAPE[0] * SHAPE[1];
const registry = createDefaultRegistry();
const io = new TensorIO();
let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "mergeloom-nonfinite-"));
});
after(() => {
  io.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Values 0.01·(i mod 17 − 8), with `poison` at element 100 when given; stored as dtype. */
function write(name: string, dtype: DType, poison?: number): string {
  const v = Float32Array.from({ length: N }, (_, i) => 0.01 * ((i % 17) - 8));
  if (poison !== undefined) v[100] = poison;
  const p = join(dir, name);
  const bytes = dtype === "F32" ? new Uint8Array(v.buffer) : new Uint8Array(Uint16Array.from(new Uint32Array(v.buffer), (b) => b >>> 16).buffer);
  writeFileSync(p, bytes);
  return p;
}

function task(
  method: string,
  dtype: DType,
  outDtype: DType,
  paths: string[],
  models: Record<string, ParamValue>[],
  params: Record<string, ParamValue> = {},
  base = false,
): TensorTask {
  const esz = dtype === "F32" ? 4 : 2;
  const src = (p: string) => ({ uri: p, offset: 0, byteLength: N * esz, dtype, shape: SHAPE, tensor: "w" });
  const dest = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const outBytes = N * (outDtype === "F32" ? 4 : 2);
  writeFileSync(dest, new Uint8Array(outBytes));
  const inputs = models.map((p, i) => ({ model: `m${i}`, source: src(paths[i]), params: p }));
  if (base) inputs.push({ model: "base", source: src(paths[models.length]), params: {} });
  return {
    name: "model.layers.0.mlp.up_proj.weight",
    shape: SHAPE,
    outDtype,
    method,
    params,
    inputs,
    baseIndex: base ? models.length : -1,
    dest: { uri: dest, offset: 0, byteLength: outBytes },
  };
}

interface PathCase {
  path: string;
  method: string;
  dtype: DType;
  outDtype: DType;
  /** Per-model params with the overflowing weight. */
  huge: Record<string, ParamValue>[];
  /** Element 100 of both models' (finite) inputs, when the overflow comes from the values. */
  big?: number;
  params?: Record<string, ParamValue>;
  base?: boolean;
  chunkElements?: number;
}

const CASES: PathCase[] = [
  { path: "fused bf16 linear kernel", method: "linear", dtype: "BF16", outDtype: "BF16", huge: [{ weight: 1e308 }, { weight: 1e308 }] },
  { path: "TypeScript whole tensor (fp32 linear)", method: "linear", dtype: "F32", outDtype: "F32", huge: [{ weight: 1e308 }, { weight: 1e308 }] },
  // 1.7e38 + 1.7e38 is finite in fp32 (max 3.4028e38) but rounds to inf in bf16 (max 3.3895e38).
  {
    path: "fp32 result finite, rounded to bf16 overflows",
    method: "linear",
    dtype: "F32",
    outDtype: "BF16",
    huge: [{ weight: 1 }, { weight: 1 }],
    params: { normalize: false },
    big: 1.7e38,
  },
  {
    path: "streamed TIES, bf16 kernel apply",
    method: "ties",
    dtype: "BF16",
    outDtype: "BF16",
    huge: [
      { weight: 1e308, density: 1 },
      { weight: 1e308, density: 1 },
    ],
    params: { normalize: false },
    base: true,
    chunkElements: 500,
  },
  {
    path: "streamed TIES, fp32 apply",
    method: "ties",
    dtype: "F32",
    outDtype: "F32",
    huge: [
      { weight: 1e308, density: 1 },
      { weight: 1e308, density: 1 },
    ],
    params: { normalize: false },
    base: true,
    chunkElements: 500,
  },
  {
    path: "TypeScript whole tensor (task arithmetic)",
    method: "task_arithmetic",
    dtype: "BF16",
    outDtype: "BF16",
    huge: [{ weight: 1e308 }, { weight: 1e308 }],
    params: { normalize: false },
    base: true,
  },
];

describe("NaN/±inf invented by the merge fail the tensor; inherited ones warn", () => {
  for (const c of CASES) {
    test(`${c.path}: finite inputs, overflowing weights → MERGE_FAILED naming tensor and method`, async () => {
      const paths = [write("a", c.dtype, c.big), write("b", c.dtype, c.big), write("base", c.dtype)];
      // The base differs from the models, so task vectors are non-zero.
      writeFileSync(paths[2], new Uint8Array(N * (c.dtype === "F32" ? 4 : 2)));
      const t = task(c.method, c.dtype, c.outDtype, paths, c.huge, c.params, c.base);
      await assert.rejects(mergeTensor({ tensor: t, seed: 1, chunkElements: c.chunkElements }, registry, io), (e: unknown) => {
        assert.ok(e instanceof MergeloomError, String(e));
        assert.equal(e.code, "MERGE_FAILED");
        assert.match(
          e.message,
          new RegExp(`^merge model\\.layers\\.0\\.mlp\\.up_proj\\.weight with ${c.method}: the merged tensor holds NaN or ±inf although no input does`),
        );
        return true;
      });
    });

    test(`${c.path}: an input already holding inf keeps the result and warns once`, async () => {
      // (A NaN input that TIES trims away leaves a finite result: no warning then, by design.)
      const paths = [write("pa", c.dtype, Infinity), write("pb", c.dtype), write("pbase", c.dtype)];
      writeFileSync(paths[2], new Uint8Array(N * (c.dtype === "F32" ? 4 : 2)));
      const models = c.huge.map((m) => ({ ...m, weight: 0.5 }));
      const t = task(c.method, c.dtype, c.outDtype, paths, models, c.params, c.base);
      const r = await mergeTensor({ tensor: t, seed: 1, chunkElements: c.chunkElements }, registry, io);
      assert.equal(r.warnings?.length, 1);
      assert.match(r.warnings![0], /input 'm0' \(tensor 'w' in .*pa\) holds NaN or ±inf/);
    });
  }

  test("finite inputs and parameters give no warning on any path", async () => {
    for (const c of CASES) {
      const paths = [write("fa", c.dtype), write("fb", c.dtype), write("fbase", c.dtype)];
      writeFileSync(paths[2], new Uint8Array(N * (c.dtype === "F32" ? 4 : 2)));
      const r = await mergeTensor(
        {
          tensor: task(
            c.method,
            c.dtype,
            c.outDtype,
            paths,
            c.huge.map((m) => ({ ...m, weight: 0.5 })),
            c.params,
            c.base,
          ),
          seed: 1,
          chunkElements: c.chunkElements,
        },
        registry,
        io,
      );
      assert.equal(r.warnings, undefined, c.path);
    }
  });
});

describe("hasNonFinite reads the stored bits of every float dtype", () => {
  const cases: Array<[DType, number[], boolean]> = [
    ["BF16", [0x3f80, 0x7f80], true],
    ["BF16", [0x3f80, 0xff80, 0x0000], true],
    ["BF16", [0x3f80, 0x7f7f, 0xff7f], false],
    ["BF16", [0x3f80, 0x3f80, 0x7fc1], true],
    ["F16", [0x3c00, 0x7bff], false],
    ["F16", [0x3c00, 0xfc00, 0x3c00], true],
  ];
  for (const [dtype, bits, expect] of cases) {
    test(`${dtype} ${bits.map((b) => b.toString(16)).join(",")} → ${expect}`, () => {
      assert.equal(hasNonFinite(new Uint8Array(Uint16Array.from(bits).buffer), dtype), expect);
    });
  }
  test("F32 and F64 infinities and NaNs, integer dtypes never", () => {
    assert.equal(hasNonFinite(new Uint8Array(Float32Array.of(1, 3.4e38).buffer), "F32"), false);
    assert.equal(hasNonFinite(new Uint8Array(Float32Array.of(1, -Infinity).buffer), "F32"), true);
    assert.equal(hasNonFinite(new Uint8Array(Float64Array.of(1e308, 2).buffer), "F64"), false);
    assert.equal(hasNonFinite(new Uint8Array(Float64Array.of(1, NaN).buffer), "F64"), true);
    assert.equal(hasNonFinite(new Uint8Array([0xff, 0xff, 0xff, 0xff]), "I32"), false);
  });
});
