import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TensorTask } from "@mergeloom/proto/merge-task";
import type { ParamValue } from "./params.js";
import { createDefaultRegistry } from "./all-methods.js";
import { mergeTensor } from "../driver/merge-tensor.js";
import { TensorIO } from "../driver/tensor-io.js";
import { createRandom } from "../tensor/random.js";

// Larger than several 4096-element apply blocks, with rows that straddle block and chunk edges,
// and values on a coarse grid so many |δ| tie at the cuts: the raw bf16 path's block-wise masks,
// tie counters and random draws must continue exactly across blocks and chunks.
const SHAPE = [211, 67];
const N = SHAPE[0] * SHAPE[1];
const CHUNKS = [67, 4096, 5000, N - 1];

const registry = createDefaultRegistry();
const io = new TensorIO();
let dir = "";
let paths: string[] = [];

function bf16Grid(seed: number, base: Float32Array | undefined, step: number): Uint16Array {
  const r = createRandom(seed, "grid");
  const f = Float32Array.from({ length: N }, (_, i) => (base ? base[i] : 0) + Math.round((r() - 0.5) * 16) * step);
  return Uint16Array.from(new Uint32Array(f.buffer), (b) => b >>> 16);
}

function task(method: string, params: Record<string, ParamValue>, models: Record<string, ParamValue>[], dest: string): TensorTask {
  const src = (i: number) => ({ uri: paths[i], offset: 0, byteLength: N * 2, dtype: "BF16" as const, shape: SHAPE, tensor: "w" });
  return {
    name: "model.layers.3.mlp.down_proj.weight",
    shape: SHAPE,
    outDtype: "BF16",
    method,
    params,
    inputs: [...models.map((p, i) => ({ model: `m${i + 1}`, source: src(i + 1), params: p })), { model: "base", source: src(0), params: {} }],
    baseIndex: models.length,
    dest: { uri: dest, offset: 0, byteLength: N * 2 },
  };
}

async function run(t: TensorTask, chunkElements: number, tag: string, cacheBytes?: number): Promise<Buffer> {
  const dest = join(dir, `out-${tag}`);
  writeFileSync(dest, new Uint8Array(N * 2));
  await mergeTensor({ tensor: { ...t, dest: { ...t.dest, uri: dest } }, seed: 11, chunkElements, cacheBytes }, registry, io);
  return readFileSync(dest);
}

const CASES: [string, Record<string, ParamValue>, Record<string, ParamValue>[]][] = [
  [
    "ties",
    {},
    [
      { weight: 1, density: 0.5 },
      { weight: 0.7, density: 0.3 },
    ],
  ],
  [
    "ties",
    { rescale: true },
    [
      { weight: 1, density: 0.4 },
      { weight: 0.6, density: 0.45 },
      { weight: 0.3, density: 0.2 },
    ],
  ],
  [
    "dare_ties",
    {},
    [
      { weight: 1, density: 0.5 },
      { weight: 0.7, density: 0.3 },
    ],
  ],
  [
    "dare_linear",
    {},
    [
      { weight: 0.6, density: 0.4 },
      { weight: 0.4, density: 0.9 },
    ],
  ],
  [
    "breadcrumbs_ties",
    {},
    [
      { weight: 1, density: 0.6, gamma: 0.05 },
      { weight: 0.5, density: 0.9, gamma: 0.02 },
    ],
  ],
  [
    "breadcrumbs",
    { lambda: 0.7 },
    [
      { weight: 0.6, density: 0.5, gamma: 0.1 },
      { weight: 0.4, density: 0.8, gamma: 0.02 },
    ],
  ],
  ["task_arithmetic", { lambda: 0.45, normalize: true }, [{ weight: 0.3 }, { weight: 0.5 }, { weight: -0.2 }]],
  [
    "ties",
    { lambda: 1.3, normalize: false },
    [
      { weight: 1, density: 1 },
      { weight: -0.7, density: 0.25 },
      { weight: 0.4, density: 0.01 },
    ],
  ],
  [
    "dare_ties",
    { rescale: false },
    [
      { weight: 0.9, density: 0.35 },
      { weight: 0.8, density: 0.6 },
      { weight: 0.2, density: 0.99 },
    ],
  ],
];

describe("streamed merges of raw bf16 inputs", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "mergeloom-bf16-"));
    const base = bf16Grid(1, undefined, 0.125);
    const baseF = new Float32Array(Uint32Array.from(base, (h) => h << 16).buffer);
    const all = [base, ...[2, 3, 4].map((s) => bf16Grid(s, baseF, 0.0625))];
    paths = all.map((v, i) => {
      const p = join(dir, `in${i}.bf16`);
      writeFileSync(p, new Uint8Array(v.buffer));
      return p;
    });
  });
  after(() => {
    io.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [k, [method, params, models]] of CASES.entries()) {
    test(`give the whole-tensor fp32 bytes across apply blocks and chunks: ${method} ${JSON.stringify(params)} ${models.length} models`, async () => {
      const t = task(method, params, models, "x");
      const whole = await run(t, Number.MAX_SAFE_INTEGER, `${k}-whole`);
      assert.notDeepEqual(whole, readFileSync(paths[0]));
      for (const chunk of CHUNKS) {
        // inputs kept in the arena across passes (the default for tensors this small), and re-read per pass
        for (const cacheBytes of [undefined, 0]) {
          const streamed = await run(t, chunk, `${k}-${chunk}-${cacheBytes}`, cacheBytes);
          assert.ok(streamed.equals(whole), `chunk ${chunk}, cacheBytes ${cacheBytes}: raw bf16 streamed bytes differ from the whole-tensor merge`);
        }
      }
    });
  }
});
