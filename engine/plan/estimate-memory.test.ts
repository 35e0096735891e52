import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { MergeMethod } from "../methods/define-merge-method.js";
import { createDefaultRegistry } from "../methods/all-methods.js";
import type { MergePlan, PlannedTensor } from "./build-plan.js";
import { estimatePeakMemory } from "./estimate-memory.js";

const MiB = 2 ** 20;
const registry = createDefaultRegistry();

/** A Llama-3-70B embedding merged from three bf16 inputs (base last). */
function embedding(method: string, params: PlannedTensor["params"], models: PlannedTensor["params"][]): PlannedTensor {
  const shape = [128256, 8192];
  const src = { uri: "/m", offset: 0, byteLength: 128256 * 8192 * 2, dtype: "BF16" as const, shape, tensor: "model.embed_tokens.weight" };
  return {
    name: "model.embed_tokens.weight",
    shape,
    outDtype: "BF16",
    method,
    params,
    inputs: [...models.map((p, i) => ({ model: `m${i}`, source: src, params: p })), { model: "base", source: src, params: {} }],
    baseIndex: models.length,
    layer: -1,
  };
}

function planOf(method: MergeMethod, t: PlannedTensor): MergePlan {
  return { method, tensors: [t] } as unknown as MergePlan;
}

describe("estimatePeakMemory", () => {
  test("a streamed TIES tensor costs one row chunk plus the cache budget, whatever its size", () => {
    const t = embedding("ties", {}, [
      { weight: 1, density: 0.5 },
      { weight: 1, density: 0.5 },
    ]);
    // 128 rows of 8192 = 1,048,576 elements per chunk: 3 inputs × (2 stored + 4 fp32) bytes, plus
    // 4 (result) + 2 (encoded) + 4 (temporaries); plus 96 MiB of cached input; plus the 120 MiB process
    const perElement = 3 * (2 + 4) + 4 + 2 + 4;
    assert.equal(estimatePeakMemory(planOf(registry.get("ties"), t), 1), 120 * MiB + 96 * MiB + 1048576 * perElement);
    assert.equal(estimatePeakMemory(planOf(registry.get("ties"), t), 2), 120 * MiB + 2 * (96 * MiB + 1048576 * perElement));
  });

  test("a method without a streaming form pays for the whole tensor in fp32", () => {
    const t = embedding("ties", {}, [
      { weight: 1, density: 0.5 },
      { weight: 1, density: 0.5 },
    ]);
    const whole: MergeMethod = { ...registry.get("ties"), streaming: undefined };
    const n = 128256 * 8192;
    assert.equal(estimatePeakMemory(planOf(whole, t), 1), 120 * MiB + n * (3 * (2 + 4) + 4 + 2 + 4));
    assert.ok(estimatePeakMemory(planOf(whole, t), 1) > 25 * 2 ** 30);
  });

  test("elementwise methods count one row chunk of 4 M elements and no cache", () => {
    const t = embedding("linear", {}, [{ weight: 0.5 }, { weight: 0.5 }]);
    assert.equal(estimatePeakMemory(planOf(registry.get("linear"), t), 1), 120 * MiB + (1 << 22) * (3 * (2 + 4) + 4 + 2 + 4));
  });
});
