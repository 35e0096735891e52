/** Where a candidate's checkpoint is written for the tasks that read one from disk (command, scorer). */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface CheckpointScratch {
  /** Runs `fn` with a fresh directory for a checkpoint of `bytes` bytes, then removes the directory. */
  use<T>(bytes: number, what: string, fn: (dir: string) => Promise<T>): Promise<T>;
}

/** A fresh directory `<os tmp>/<prefix>XXXXXX` per use, without a size limit (in-process searches). */
export function tempScratch(prefix: string): CheckpointScratch {
  return {
    async use(_bytes, _what, fn) {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      try {
        return await fn(dir);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
