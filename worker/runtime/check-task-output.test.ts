import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MergeTask } from "@mergeloom/proto/merge-task";
import { writeJobMarker } from "@mergeloom/engine/output";
import { checkTaskOutput } from "./check-task-output.js";

let root: string;
let tmp: string;
let shard: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "mergeloom-cto-"));
  tmp = join(root, "out.mergeloom-tmp-abc123");
  await mkdir(tmp);
  await writeJobMarker(tmp, "job1");
  shard = join(tmp, "model-00001-of-00001.safetensors");
  await writeFile(shard, Buffer.alloc(8));
  await writeFile(join(root, "input.safetensors"), "x");
});
after(() => rm(root, { recursive: true, force: true }));

const task = (dest: string, jobId = "job1", output?: "object"): MergeTask => ({
  jobId,
  taskId: "t0",
  seed: 0,
  ...(output ? { output } : {}),
  tensors: [{ name: "w", shape: [2], outDtype: "F32", method: "linear", params: {}, inputs: [], baseIndex: -1, dest: { uri: dest, offset: 0, byteLength: 8 } }],
});

describe("where a task may write", () => {
  test("a preallocated shard in the job's marked temporary output is accepted", async () => {
    await checkTaskOutput(task(shard));
    await checkTaskOutput(task(`file://${shard}`));
  });

  test("discard:// and object-mode destinations are not local writes", async () => {
    await checkTaskOutput(task("discard://"));
    await checkTaskOutput(task("/etc/passwd", "job1", "object"));
  });

  for (const [what, dest, reason] of [
    ["a file outside any temporary output", () => join(root, "input.safetensors"), /not a temporary output directory/],
    ["a relative path", () => "out.mergeloom-tmp-abc123/x", /not an absolute local path/],
    ["a path with '..'", () => `${tmp}/../input.safetensors`, /'\.' or '\.\.'/],
    ["a missing shard", () => join(tmp, "other.safetensors"), /does not exist/],
    ["a missing temporary output", () => join(root, "gone.mergeloom-tmp-zzz", "s"), /does not exist/],
    ["an http URL", () => "http://host/x", /not an absolute local path/],
  ] as const) {
    test(`${what} is refused`, async () => {
      await assert.rejects(
        () => checkTaskOutput(task(dest())),
        (e: Error & { code?: string }) => e.code === "PATH_ESCAPE" && reason.test(e.message),
      );
    });
  }

  test("another job's output, a symlinked shard and a symlinked marker are refused", async () => {
    await assert.rejects(() => checkTaskOutput(task(shard, "job2")), /belongs to another job/);
    await symlink(join(root, "input.safetensors"), join(tmp, "link.safetensors"));
    await assert.rejects(() => checkTaskOutput(task(join(tmp, "link.safetensors"))), /symlink/);
    const t2 = join(root, "b.mergeloom-tmp-x");
    await mkdir(t2);
    await writeFile(join(t2, "s"), "");
    await writeFile(join(root, "m"), "job1\n");
    await symlink(join(root, "m"), join(t2, ".mergeloom-job"));
    await assert.rejects(() => checkTaskOutput(task(join(t2, "s"))), /marker is not a regular file/);
  });
});
