/**
 * A worker's local scratch space for candidate checkpoints that a scorer reads: one directory
 * per evaluation under `root`, removed when the evaluation ends (success or failure), at most
 * `maxBytes` of planned checkpoint bytes at once, and directories left by a killed worker removed
 * at start.
 */
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { CheckpointScratch } from "@mergeloom/engine/eval";

const PREFIX = "candidate-";

export class ScratchDir implements CheckpointScratch {
  private reserved = 0;

  constructor(
    readonly root: string,
    readonly maxBytes: number,
  ) {}

  /** Creates the root and removes candidate directories a previous (killed) worker left there. */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    for (const e of await readdir(this.root)) if (e.startsWith(PREFIX)) await rm(join(this.root, e), { recursive: true, force: true });
  }

  get reservedBytes(): number {
    return this.reserved;
  }

  /** Runs `fn` with a fresh directory for a checkpoint of `bytes` bytes, then removes it. */
  async use<T>(bytes: number, what: string, fn: (dir: string) => Promise<T>): Promise<T> {
    if (bytes > this.maxBytes) {
      throw new MergeloomError(
        "EVAL_FAILED",
        `${what}: the checkpoint needs ${bytes} bytes of scratch but this worker allows ${this.maxBytes}; raise --scratch-max-bytes or use a worker with more local disk`,
      );
    }
    if (this.reserved + bytes > this.maxBytes) {
      throw new MergeloomError(
        "EVAL_FAILED",
        `${what}: scratch is full (${this.reserved} of ${this.maxBytes} bytes held by other evaluations); retried later`,
        { retryable: true },
      );
    }
    this.reserved += bytes;
    let dir: string | undefined;
    try {
      dir = await mkdtemp(join(this.root, PREFIX));
      return await fn(dir);
    } finally {
      this.reserved -= bytes;
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }
}
