import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DType } from "@mergeloom/proto/dtype";
import type { TensorTask } from "@mergeloom/proto/merge-task";
import type { ParamValue } from "../methods/params.js";
import { createDefaultRegistry } from "../methods/all-methods.js";
import { mergeTensor } from "./merge-tensor.js";
import { TensorIO } from "./tensor-io.js";
import { createRandom } from "../tensor/random.js";

// Shape with rows that do not divide the chunk sizes below, and values on a coarse grid so that
// many |δ| are exactly equal: the tie rule at every cut is exercised across chunk boundaries.
const SHAPE = [37, 29];
const N = SHAPE[0] * SHAPE[1];
const CHUNKS = [1, 29, 100, 500, N - 1];

const registry = createDefaultRegistry();
const io = new TensorIO();
let dir = "";

function grid(seed: number, n: number, step: number): Float32Array {
  const r = createRandom(seed, "grid");
  return Float32Array.from({ length: n }, () => Math.round((r() - 0.5) * 16) * step);
}

function writeF32(name: string, v: Float32Array): string {
  const p = join(dir, name);
  writeFileSync(p, new Uint8Array(v.buffer));
  return p;
}

function writeBF16(name: string, v: Float32Array): string {
  const u = new Uint32Array(v.buffer);
  const p = join(dir, name);
  writeFileSync(p, new Uint8Array(Uint16Array.from(u, (b) => b >>> 16).buffer));
  return p;
}

interface Case {
  method: string;
  params?: Record<string, ParamValue>;
  models: Record<string, ParamValue>[];
  dtype?: DType;
  outDtype?: DType;
  addVector?: boolean;
}

let inputs: { f32: string[]; bf16: string[] };

function task(c: Case, dest: string): TensorTask {
  const dtype = c.dtype ?? "F32";
  const esz = dtype === "F32" ? 4 : 2;
  const paths = dtype === "F32" ? inputs.f32 : inputs.bf16;
  const src = (i: number) => ({ uri: paths[i], offset: 0, byteLength: N * esz, dtype, shape: SHAPE, tensor: "w" });
  const specs = c.models.map((params, i) => ({ model: `m${i + 1}`, source: src(i + 1), params }));
  if (c.addVector) specs[0] = { ...specs[0], addVectors: [{ source: src(3), scale: 0.5 }] } as (typeof specs)[0];
  const outEsz = (c.outDtype ?? "F32") === "F32" ? 4 : 2;
  return {
    name: "model.layers.0.mlp.up_proj.weight",
    shape: SHAPE,
    outDtype: c.outDtype ?? "F32",
    method: c.method,
    params: c.params ?? {},
    inputs: [...specs, { model: "base", source: src(0), params: {} }],
    baseIndex: specs.length,
    dest: { uri: dest, offset: 0, byteLength: N * outEsz },
  };
}

async function run(c: Case, chunkElements: number, tag: string): Promise<Buffer> {
  const dest = join(dir, `out-${tag}`);
  const t = task(c, dest);
  writeFileSync(dest, new Uint8Array(t.dest.byteLength));
  await mergeTensor({ tensor: t, seed: 5, chunkElements }, registry, io);
  return readFileSync(dest);
}

const CASES: Case[] = [
  {
    method: "ties",
    models: [
      { weight: 1, density: 0.5 },
      { weight: 0.7, density: 0.3 },
    ],
  },
  {
    method: "ties",
    params: { rescale: true, lambda: 0.9 },
    models: [
      { weight: 1, density: 0.5 },
      { weight: 0.7, density: 0.31 },
    ],
  },
  {
    method: "ties",
    params: { normalize: false },
    models: [
      { weight: 1, density: 0.2 },
      { weight: -0.4, density: 1 },
    ],
    dtype: "BF16",
    outDtype: "BF16",
  },
  {
    method: "ties",
    models: [
      { weight: 1, density: 0.5 },
      { weight: 0.5, density: 0.7 },
    ],
    addVector: true,
  },
  {
    method: "dare_ties",
    models: [
      { weight: 1, density: 0.5 },
      { weight: 0.7, density: 0.3 },
    ],
    dtype: "BF16",
  },
  {
    method: "dare_ties",
    params: { rescale: false },
    models: [
      { weight: 1, density: 0.5 },
      { weight: 0.7, density: 0.3 },
    ],
  },
  {
    method: "dare_linear",
    models: [
      { weight: 0.6, density: 0.4 },
      { weight: 0.4, density: 0.9 },
    ],
  },
  {
    method: "breadcrumbs",
    models: [
      { weight: 1, density: 0.6, gamma: 0.05 },
      { weight: 0.5, density: 0.8, gamma: 0.1 },
    ],
  },
  {
    method: "breadcrumbs",
    params: { rescale: true },
    models: [
      { weight: 1, density: 0.9, gamma: 0 },
      { weight: 0.5, density: 0.5, gamma: 0.3 },
    ],
  },
  {
    method: "breadcrumbs_ties",
    models: [
      { weight: 1, density: 0.6, gamma: 0.05 },
      { weight: 0.5, density: 0.95, gamma: 0.01 },
    ],
    dtype: "BF16",
    outDtype: "BF16",
  },
  { method: "slerp", params: { t: 0.3 }, models: [{}] },
  { method: "slerp", params: { t: 0.7 }, models: [{}], dtype: "BF16", outDtype: "BF16" },
  { method: "slerp", params: { t: 0.45 }, models: [{}], dtype: "BF16" },
  { method: "task_arithmetic", models: [{ weight: 0.5 }, { weight: 0.25 }] },
  {
    method: "della",
    models: [
      { weight: 1, density: 0.5 },
      { weight: 0.5, density: 0.6 },
    ],
  },
  {
    method: "della",
    params: { rescale: false, lambda: 0.8 },
    models: [
      { weight: 1, density: 0.4, epsilon: 0.1 },
      { weight: 0.5, density: 0 },
    ],
    dtype: "BF16",
    outDtype: "BF16",
  },
  {
    method: "della_linear",
    models: [
      { weight: 0.7, density: 0.3, epsilon: 0.2 },
      { weight: 0.4, density: 1 },
    ],
    dtype: "BF16",
  },
];

describe("streamed merges", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "mergeloom-stream-"));
    const base = grid(1, N, 0.125);
    const models = [1, 2, 3, 4].map((s) => {
      const d = grid(s + 10, N, 0.0625);
      return Float32Array.from(base, (b, i) => b + d[i]);
    });
    const all = [base, ...models];
    inputs = { f32: all.map((v, i) => writeF32(`in${i}.f32`, v)), bf16: all.map((v, i) => writeBF16(`in${i}.bf16`, v)) };
  });
  after(() => {
    io.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [k, c] of CASES.entries()) {
    const label = `${c.method} ${JSON.stringify(c.params ?? {})} ${JSON.stringify(c.models)} ${c.dtype ?? "F32"}→${c.outDtype ?? "F32"}${c.addVector ? " +vector" : ""}`;
    test(`gives the whole-tensor bytes for every chunk size: ${label}`, async () => {
      const t = task(c, "discard://x");
      const info = { tensorName: t.name, shape: SHAPE, inputs: t.inputs, baseIndex: t.baseIndex, params: t.params, numel: N };
      const method = registry.get(c.method);
      // every method here takes the streamed path (della too: it ranks within rows, and chunks are whole rows)
      assert.ok(method.streaming?.(info) !== undefined);
      const whole = await run(c, Number.MAX_SAFE_INTEGER, `${k}-whole`);
      // the merge must have changed something, or the comparison proves little
      assert.notDeepEqual(whole, readFileSync(c.dtype === "BF16" ? inputs.bf16[0] : inputs.f32[0]).subarray(0, whole.length));
      for (const chunk of CHUNKS) {
        const streamed = await run(c, chunk, `${k}-${chunk}`);
        assert.ok(streamed.equals(whole), `chunk ${chunk}: streamed bytes differ from the whole-tensor merge`);
      }
    });
  }

  test("a discard:// destination gets the same checksum streamed or whole", async () => {
    const c = CASES[0];
    const t = task(c, "discard://x");
    const whole = await mergeTensor({ tensor: t, seed: 5, chunkElements: Number.MAX_SAFE_INTEGER }, registry, io);
    const streamed = await mergeTensor({ tensor: t, seed: 5, chunkElements: 64 }, registry, io);
    assert.equal(streamed.sha256, whole.sha256);
    assert.equal(streamed.bytesRead, whole.bytesRead);
  });
});

describe("counter-based random streams", () => {
  test("a stream started at draw s continues the stream started at 0", () => {
    const a = createRandom(9, "t\u00001");
    const draws = Array.from({ length: 100 }, () => a());
    const b = createRandom(9, "t\u00001", 37);
    assert.deepEqual(
      Array.from({ length: 63 }, () => b()),
      draws.slice(37),
    );
  });

  test("draws are uniform enough and differ between keys", () => {
    const n = 200_000;
    const r = createRandom(3, "k\u00000");
    const q = createRandom(3, "k\u00001");
    let sum = 0;
    let below = 0;
    let same = 0;
    for (let i = 0; i < n; i++) {
      const u = r();
      assert.ok(u >= 0 && u < 1);
      sum += u;
      if (u < 0.3) below++;
      if (u === q()) same++;
    }
    assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
    assert.ok(Math.abs(below / n - 0.3) < 0.005, `P(u < .3) ${below / n}`);
    assert.ok(same < 100, `${same} equal draws between keys`);
  });
});
