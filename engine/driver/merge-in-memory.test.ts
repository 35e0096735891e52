// The in-memory merge must equal, bit for bit, what `mergeloom merge` writes to disk for the same
// config (the file path is the independent reference), and a second merge must read nothing.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, planMerge, runMergeJob } from "../job/run-merge-job.js";
import { LocalDispatcher } from "../job/local-dispatcher.js";
import { loadWeightsF32 } from "../eval/load-weights.js";
import { createDefaultRegistry } from "../methods/all-methods.js";
import { InMemoryMerger } from "./merge-in-memory.js";
import { repoRoot } from "../testing/repo-paths.js";
import { TensorIO } from "./tensor-io.js";

const ROOT = repoRoot();
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("InMemoryMerger", () => {
  for (const example of ["ties-arith.yml", "task-arithmetic-add-sub.yml"]) {
    test(`merging examples/${example} in memory gives exactly the weights mergeloom merge writes`, async () => {
      const cwd = process.cwd();
      process.chdir(ROOT);
      try {
        const cfg = await loadConfig(join(ROOT, "examples", example));
        const plan = await planMerge(cfg);
        const io = new TensorIO();
        const merger = new InMemoryMerger(createDefaultRegistry(), io);
        const mem = await merger.mergeAll(plan.tensors, 0);
        const readFirst = merger.bytesRead;
        const again = await merger.mergeAll(plan.tensors, 0);
        io.close();
        assert.equal(merger.bytesRead, readFirst, "the second merge is served from the input cache");

        const dir = await mkdtemp(join(tmpdir(), "mergeloom-inmem-"));
        dirs.push(dir);
        const dispatcher = new LocalDispatcher({ threads: 0 });
        await runMergeJob(cfg, dispatcher, { out: join(dir, "out"), seed: 0, maxShardBytes: 5e9 });
        await dispatcher.close();
        const disk = await loadWeightsF32(join(dir, "out"));

        assert.equal(mem.size, disk.size);
        for (const [name, t] of disk) {
          const m = mem.get(name);
          assert.ok(m, `missing ${name}`);
          assert.deepEqual(m.shape, t.shape);
          assert.deepEqual(
            Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength),
            Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
            name,
          );
          assert.deepEqual(again.get(name)!.data, m.data, `${name} is the same on a cached re-merge`);
        }
      } finally {
        process.chdir(cwd);
      }
    });
  }
});
