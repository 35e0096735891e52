// Whole-checkpoint merges of the arith-llama fixture against an independent numpy reference
// (test/reference/fixture_merges.py, written from mergekit-semantics.md, committed output in
// test/reference/expected/). Each merge runs through the real engine (config → plan → tasks →
// assembled safetensors) and every output tensor is compared bit-for-bit in bf16: at least 99.9 %
// of each tensor's elements must be identical and none may be more than 1 bf16 ulp apart (fp32
// summation order may legitimately differ).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, runMergeJob } from "@mergeloom/engine/job";
import { LocalDispatcher } from "@mergeloom/engine/job";
import { loadWeightsF32 } from "@mergeloom/engine/eval";
import type { WeightMap } from "@mergeloom/engine/eval";
import { REPO_ROOT } from "../harness/repo-root.js";

const root = REPO_ROOT;
const refDir = join(root, "test", "reference");
const MERGES = ["linear", "task_arithmetic", "ties", "slerp", "model_stock", "passthrough"] as const;

/** The full output name → shape list the reference stored in __metadata__ (files may hold a subset). */
function readExpectedTensorList(file: string): Map<string, number[]> {
  const raw = readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.subarray(8, 8 + n).toString("utf8")) as { __metadata__: Record<string, string> };
  const list = JSON.parse(header.__metadata__["mergeloom.expected_tensors"]!) as Record<string, number[]>;
  return new Map(Object.entries(list));
}

/** bf16 values (read back exactly as f32) on a monotonic integer scale, so |a − b| counts ulps. */
function bf16Key(v: number, scratch: Float32Array, bits: Uint32Array): number {
  scratch[0] = v;
  const b = bits[0]! >>> 16;
  return b & 0x8000 ? -(b & 0x7fff) : b;
}

interface Mismatch {
  exact: number;
  oneUlp: number;
  worse: number;
  worstIndex: number;
  worstUlps: number;
}

function compareBf16(got: Float32Array, want: Float32Array): Mismatch {
  const scratch = new Float32Array(1);
  const bits = new Uint32Array(scratch.buffer);
  const m: Mismatch = { exact: 0, oneUlp: 0, worse: 0, worstIndex: -1, worstUlps: 0 };
  for (let i = 0; i < want.length; i++) {
    if (got[i] === want[i]) {
      m.exact++;
      continue;
    }
    const d = Number.isNaN(got[i]) || Number.isNaN(want[i]) ? Infinity : Math.abs(bf16Key(got[i]!, scratch, bits) - bf16Key(want[i]!, scratch, bits));
    if (d <= 1) m.oneUlp++;
    else m.worse++;
    if (d > m.worstUlps) {
      m.worstUlps = d;
      m.worstIndex = i;
    }
  }
  return m;
}

describe("whole-checkpoint merges of arith-llama match the independent numpy reference", () => {
  let work: string;
  let dispatcher: LocalDispatcher;
  const cwd = process.cwd();

  before(async () => {
    // The committed configs name models relative to the repository root, like examples/.
    process.chdir(root);
    work = await mkdtemp(join(tmpdir(), "mergeloom-fixture-numerics-"));
    dispatcher = new LocalDispatcher({ threads: 0 });
  });
  after(async () => {
    await dispatcher.close();
    await rm(work, { recursive: true, force: true });
    process.chdir(cwd);
  });

  for (const merge of MERGES) {
    test(`${merge}: every output tensor equals the reference in bf16 (≥ 99.9 % exact, never more than 1 ulp off)`, async () => {
      const expectedFile = join(refDir, "expected", `${merge}.safetensors`);
      assert.ok(statSync(expectedFile).isFile(), `missing ${expectedFile}; run python3 test/reference/fixture_merges.py`);
      const config = await loadConfig(join(refDir, "configs", `${merge}.yml`));
      const out = join(work, merge);
      await runMergeJob(config, dispatcher, { out, seed: 0, maxShardBytes: 1 << 30, overwrite: true });

      const ours: WeightMap = await loadWeightsF32(out);
      const expected: WeightMap = await loadWeightsF32(expectedFile);
      const list = readExpectedTensorList(expectedFile);

      // Same tensor names and shapes as the full reference output (stored or not).
      assert.deepEqual([...ours.keys()].sort(), [...list.keys()].sort(), `${merge}: output tensor names differ from the reference`);
      for (const [name, shape] of list) assert.deepEqual(ours.get(name)!.shape, shape, `${merge}: shape of ${name}`);
      assert.ok(expected.size > 0, `${merge}: reference file holds no tensors`);

      let total = 0;
      let exact = 0;
      let oneUlp = 0;
      const failures: string[] = [];
      for (const [name, want] of expected) {
        const got = ours.get(name);
        assert.ok(got, `${merge}: our output lacks ${name}`);
        assert.deepEqual(got.shape, want.shape, `${merge}: shape of ${name}`);
        const m = compareBf16(got.data, want.data);
        total += want.data.length;
        exact += m.exact;
        oneUlp += m.oneUlp;
        if (m.oneUlp + m.worse > 0) console.log(`  ${merge} ${name}: ${m.oneUlp} elements 1 ulp off, ${m.worse} worse (of ${want.data.length})`);
        if (m.worse > 0 || m.exact < 0.999 * want.data.length) {
          const i = m.worstIndex;
          failures.push(
            `${name}: ${m.exact}/${want.data.length} exact, ${m.worse} beyond 1 ulp; worst at flat index ${i}: expected ${want.data[i]}, got ${got.data[i]} (${m.worstUlps} ulps)`,
          );
        }
      }
      console.log(`${merge}: ${expected.size} tensors, ${total} elements compared: ${exact} exact, ${oneUlp} 1 ulp off, ${total - exact - oneUlp} worse`);
      assert.deepEqual(failures, [], `${merge} disagrees with the numpy reference:\n${failures.join("\n")}`);
    });
  }
});
