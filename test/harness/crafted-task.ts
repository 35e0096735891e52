/**
 * Hand-made merge tasks for tests that play the coordinator's part themselves (crafted and
 * hostile messages, resource checks over hundreds of jobs): two tiny input checkpoints, a job's
 * temporary output directory with its marker and preallocated shard, and a one-tensor task.
 */
import { createHash } from "node:crypto";
import { lstat, mkdtemp, readdir, readFile, readlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { MergeTask } from "@mergeloom/proto/merge-task";
import type { TaskOutcome } from "@mergeloom/proto/records";
import type { KvBucket } from "@mergeloom/transport";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import { writeJobMarker } from "@mergeloom/engine/output";
import { writeFakeCheckpoint } from "./synthetic-checkpoint.js";

const SHAPE = [4, 4];
export const TENSOR_BYTES = 16 * 4;

export interface TinyModels {
  a: string;
  b: string;
  /** Byte offset of tensor `w` in each file. */
  offset: number;
}

/** Two one-tensor F32 checkpoints under `root/models`. */
export async function writeTinyModels(root: string): Promise<TinyModels> {
  const tensors = [{ name: "w", dtype: "F32" as const, shape: SHAPE }];
  await writeFakeCheckpoint(join(root, "models", "a"), tensors, { seed: 1 });
  await writeFakeCheckpoint(join(root, "models", "b"), tensors, { seed: 2 });
  const offset = buildSafetensorsHeader(tensors).bytes.byteLength;
  return { a: join(root, "models", "a", "model.safetensors"), b: join(root, "models", "b", "model.safetensors"), offset };
}

/** What a coordinator creates for a job: `<root>/<name>.mergeloom-tmp-XXXXXX` with the marker and a preallocated shard. */
export async function createJobOutput(root: string, jobId: string, opts: { marker?: boolean } = {}): Promise<{ dir: string; shard: string }> {
  const dir = await mkdtemp(join(root, `out-${jobId}.mergeloom-tmp-`));
  if (opts.marker !== false) await writeJobMarker(dir, jobId);
  const shard = join(dir, "model-00001-of-00001.safetensors");
  await writeFile(shard, "");
  await truncate(shard, TENSOR_BYTES);
  return { dir, shard };
}

/** A linear merge of `w` from both models into `dest`. */
export function linearTask(jobId: string, taskId: string, models: TinyModels, dest: string): MergeTask {
  const src = (uri: string) => ({ uri, offset: models.offset, byteLength: TENSOR_BYTES, dtype: "F32" as const, shape: SHAPE, tensor: "w" });
  return {
    jobId,
    taskId,
    seed: 0,
    tensors: [
      {
        name: "w",
        shape: SHAPE,
        outDtype: "F32",
        method: "linear",
        params: { normalize: true },
        inputs: [
          { model: "a", source: src(models.a), params: { weight: 1 } },
          { model: "b", source: src(models.b), params: { weight: 1 } },
        ],
        baseIndex: -1,
        dest: { uri: dest, offset: 0, byteLength: TENSOR_BYTES },
      },
    ],
  };
}

/** Polls the tasks bucket until the outcome of `key` appears. */
export async function waitOutcome(kv: KvBucket<TaskOutcome>, key: string, timeoutMs = 15_000): Promise<TaskOutcome> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const e = await kv.get(key).catch(() => null);
    if (e) return e.value;
    if (Date.now() > end) throw new Error(`no outcome for ${key} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Path → sha256 (files), link target (symlinks) or "dir", for every entry under `root`, skipping `skip`. */
export async function hashTree(root: string, skip: (path: string) => boolean = () => false): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      if (skip(p)) continue;
      const st = await lstat(p);
      if (st.isSymbolicLink()) out.set(p, `link:${await readlink(p)}`);
      else if (st.isDirectory()) {
        out.set(p, "dir");
        await walk(p);
      } else
        out.set(
          p,
          createHash("sha256")
            .update(await readFile(p))
            .digest("hex"),
        );
    }
  };
  await walk(root);
  return out;
}
