// --numerics mergekit through the per-tensor driver: row chunks (how large elementwise tensors
// are split across threads and workers) give the whole tensor's bytes, the task message carries
// the compute dtype through the codec, and random pruning keeps elements at mergekit's rate.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DType } from "@mergeloom/proto/dtype";
import type { MergeTask, TensorTask } from "@mergeloom/proto/merge-task";
import { decodeMessage, encodeMessage } from "@mergeloom/proto/codec";
import { ProtocolError } from "@mergeloom/proto/errors";
import type { ParamValue } from "../methods/params.js";
import { createDefaultRegistry } from "../methods/all-methods.js";
import { isElementwise, mergeTensor } from "../driver/merge-tensor.js";
import { TensorIO } from "../driver/tensor-io.js";
import { createRandom } from "../tensor/random.js";

const ROWS = 41;
const COLS = 37; // 1517 elements: torch's 32-column cascade blocks end mid-row
const N = ROWS * COLS;
const registry = createDefaultRegistry();
const io = new TensorIO();
let dir = "";
let paths: string[] = [];

function bf16File(name: string, v: Float32Array): string {
  const p = join(dir, name);
  writeFileSync(p, new Uint8Array(Uint16Array.from(new Uint32Array(v.buffer), (b) => b >>> 16).buffer));
  return p;
}

function task(
  method: string,
  models: Record<string, ParamValue>[],
  params: Record<string, ParamValue>,
  compute: "F32" | "BF16" | "F16" | undefined,
  dest: string,
): TensorTask {
  const src = (i: number) => ({ uri: paths[i], offset: 0, byteLength: N * 2, dtype: "BF16" as DType, shape: [ROWS, COLS], tensor: "w" });
  return {
    name: "model.layers.0.mlp.up_proj.weight",
    shape: [ROWS, COLS],
    outDtype: "BF16",
    method,
    params,
    inputs: [{ model: "base", source: src(0), params: { weight: 0.15 } }, ...models.map((p, i) => ({ model: `m${i}`, source: src(i + 1), params: p }))],
    baseIndex: 0,
    ...(compute ? { computeDtype: compute } : {}),
    dest: { uri: dest, offset: 0, byteLength: N * 2 },
  };
}

async function merge(t: TensorTask, rows?: Array<[number, number]>): Promise<Buffer> {
  writeFileSync(t.dest.uri, new Uint8Array(N * 2));
  for (const r of rows ?? [undefined]) await mergeTensor({ tensor: t, seed: 3, ...(r ? { rows: r } : {}) }, registry, io);
  return readFileSync(t.dest.uri);
}

describe("--numerics mergekit in the per-tensor driver", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "mergeloom-mk-"));
    const r = createRandom(11, "mk");
    const base = Float32Array.from({ length: N }, () => (r() - 0.5) * 0.1);
    paths = [bf16File("base", base)];
    for (let m = 0; m < 6; m++)
      paths.push(
        bf16File(
          `m${m}`,
          Float32Array.from(base, (b) => b + (r() - 0.5) * 0.002),
        ),
      );
  });
  after(() => {
    io.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const chunkings: Array<Array<[number, number]>> = [
    [
      [0, 1],
      [1, 2],
      [2, ROWS],
    ],
    [
      [0, 13],
      [13, 27],
      [27, ROWS],
    ],
    Array.from({ length: ROWS }, (_, i): [number, number] => [i, i + 1]),
  ];
  const cases: Array<[string, Record<string, ParamValue>[], Record<string, ParamValue>]> = [
    ["linear", [0.3, 0.2, 0.7, 1.1, 0.5, 0.25].map((weight) => ({ weight })), {}],
    ["task_arithmetic", [0.3, 0.2, 0.7, 1.1, 0.5].map((weight) => ({ weight })), { lambda: 0.3 }],
    ["ties", [0.3, 0.2, 0.7, 1.1, 0.5].map((weight) => ({ weight, density: 1 })), { normalize: true }],
  ];
  for (const [method, models, params] of cases) {
    for (const dt of ["F32", "BF16", "F16"] as const) {
      test(`${method} with ${models.length + 1} models in ${dt}: row chunks give the whole tensor's bytes, which differ from the default numerics`, async () => {
        const t = task(method, models, params, dt, join(dir, `out-${method}-${dt}`));
        assert.ok(isElementwise(registry.get(method), t), `${method} is merged in row chunks`);
        const whole = await merge(t);
        for (const rows of chunkings) assert.ok((await merge(t, rows)).equals(whole), `chunks ${JSON.stringify(rows.slice(0, 3))}…`);
        if (dt !== "F32") {
          const plain = await merge(task(method, models, params, undefined, join(dir, `out-${method}-default`)));
          assert.ok(!plain.equals(whole), "the default numerics give other bytes here");
        }
      });
    }
  }

  test("magnitude pruning is merged whole (torch's sort needs every |δ|)", () => {
    const t = task(
      "ties",
      [
        { weight: 1, density: 0.5 },
        { weight: 1, density: 1 },
      ],
      {},
      "BF16",
      "discard://x",
    );
    assert.equal(isElementwise(registry.get("ties"), t), false);
  });

  test("random pruning keeps each element with probability bf16(density), as torch.bernoulli(full_like(δ, density)) does", async () => {
    // dare_linear without rescale on identical task vectors: the output is base + Σ w·mask·δ;
    // count kept elements of one model (the other has weight 0).
    const t = task(
      "dare_linear",
      [
        { weight: 1, density: 0.3 },
        { weight: 0, density: 0.3 },
      ],
      { rescale: false },
      "BF16",
      join(dir, "out-dare"),
    );
    const out = new Uint16Array(new Uint8Array(await merge(t)).buffer);
    const base = new Uint16Array(new Uint8Array(readFileSync(paths[0])).buffer);
    const m0 = new Uint16Array(new Uint8Array(readFileSync(paths[1])).buffer);
    let kept = 0;
    let moved = 0;
    for (let j = 0; j < N; j++) {
      if (m0[j] === base[j]) continue;
      moved++;
      if (out[j] !== base[j]) kept++;
    }
    const rate = kept / moved;
    const p = 0.30078125;
    const sd = Math.sqrt((p * (1 - p)) / moved);
    assert.ok(Math.abs(rate - p) < 4 * sd, `kept ${kept}/${moved} = ${rate}, expected ${p} ± ${4 * sd}`);
  });

  test("the task message carries the compute dtype through the codec, and an unknown one is refused", () => {
    const t = task("linear", [{ weight: 1 }], {}, "BF16", "file:///out/shard");
    const msg: MergeTask = { jobId: "j", taskId: "t1", seed: 0, tensors: [t] };
    const back = decodeMessage(encodeMessage("merge-task", msg), { expect: "merge-task" }) as { body: MergeTask };
    assert.equal(back.body.tensors[0].computeDtype, "BF16");
    const bad = { ...msg, tensors: [{ ...t, computeDtype: "F64" }] } as unknown as MergeTask;
    assert.throws(
      () => decodeMessage(encodeMessage("merge-task", bad), { expect: "merge-task" }),
      (e: unknown) => e instanceof ProtocolError,
    );
  });
});
