/**
 * One writer per output: `<out>.mergeloom-lock` in the output's parent, created with O_EXCL and
 * holding the owner's pid and host. A lock whose owner is provably dead (same host, pid gone) is
 * taken over; a live owner, or one on another host, makes the second run fail up front instead of
 * two runs renaming over each other.
 */
import { link, open, readFile, rename, unlink } from "node:fs/promises";
import { unlinkSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { MergeloomError } from "@mergeloom/proto/errors";
import { StorageError } from "../errors/index.js";
import { currentOwner, isOwnerDead, parseOwner, type ProcessOwner } from "./process-owner.js";

export const LOCK_TAG = ".mergeloom-lock";

export class OutputLock {
  private released = false;
  private constructor(
    readonly path: string,
    readonly finalPath: string,
  ) {}

  /** Takes the lock of `finalPath` (absolute) or throws OUTPUT_LOCKED naming the holder. */
  static async acquire(finalPath: string, info: { jobId?: string } = {}): Promise<OutputLock> {
    const path = finalPath + LOCK_TAG;
    const body = JSON.stringify({ ...currentOwner(), jobId: info.jobId, startedAt: Date.now() }) + "\n";
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(path, "wx", 0o644);
        try {
          await fh.writeFile(body);
        } finally {
          await fh.close();
        }
        return new OutputLock(path, finalPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST")
          throw new StorageError(`lock output ${finalPath}: cannot create ${path} (${(err as Error).message})`, { cause: err });
      }
      const text = await readFile(path, "utf8").catch(() => undefined);
      if (text === undefined) continue; // released between our open and read: try again
      const owner = parseOwner(text);
      if (owner && !isOwnerDead(owner)) throw lockedError(finalPath, owner, path);
      if (!owner && text.length > 0) throw lockedError(finalPath, undefined, path);
      // Stale (dead owner) or empty (a writer died between create and write): take it over by
      // renaming it away — only one contender's rename succeeds — then check we moved the same file.
      const aside = `${path}.stale-${randomBytes(4).toString("hex")}`;
      try {
        await rename(path, aside);
      } catch {
        continue;
      }
      const moved = await readFile(aside, "utf8").catch(() => "");
      if (moved !== text) {
        // Someone else took it over first and we moved their fresh lock: put it back.
        await link(aside, path).catch(() => undefined);
        await unlink(aside).catch(() => undefined);
        continue;
      }
      await unlink(aside).catch(() => undefined);
    }
    throw new MergeloomError("OUTPUT_LOCKED", `write output ${finalPath}: could not take the lock ${path}; another run keeps replacing it — try again`);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await unlink(this.path).catch(() => undefined);
  }

  /** For exit paths that cannot await (a second signal). */
  releaseSync(): void {
    if (this.released) return;
    this.released = true;
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone.
    }
  }
}

function lockedError(finalPath: string, owner: ProcessOwner | undefined, lockPath: string): MergeloomError {
  const who = owner ? `pid ${owner.pid} on host ${owner.host}` : "unknown owner";
  return new MergeloomError(
    "OUTPUT_LOCKED",
    `write output ${finalPath}: another mergeloom run (${who}) is writing ${finalPath}; wait for it to finish or stop it (if it is gone, delete ${lockPath})`,
  );
}
