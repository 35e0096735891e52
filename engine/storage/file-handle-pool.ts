/**
 * A cache of open read-only file handles. Workers read many byte ranges of the same few shard
 * files; reopening a file per range costs a syscall pair and, on network filesystems, a round trip.
 * Handles in use are never closed; idle ones are closed least-recently-used first past `maxOpen`.
 */
import type { FileHandle } from "node:fs/promises";
import { fsError } from "./fs-error.js";
import { openRegularFile } from "./regular-file.js";

interface Slot {
  handle: Promise<FileHandle>;
  refs: number;
  lastUsed: number;
}

export class FileHandlePool {
  readonly maxOpen: number;
  private readonly slots = new Map<string, Slot>();
  private tick = 0;

  constructor(opts: { maxOpen?: number } = {}) {
    this.maxOpen = Math.max(1, opts.maxOpen ?? 64);
  }

  /** Number of files currently open (or being opened). */
  get openCount(): number {
    return this.slots.size;
  }

  /** Runs `fn` with an open handle for `path`; the handle stays cached for later calls. */
  async use<T>(path: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    let slot = this.slots.get(path);
    if (!slot) {
      const handle = openRegularFile(path).catch((err: unknown) => {
        this.slots.delete(path);
        throw fsError("open", path, err);
      });
      slot = { handle, refs: 0, lastUsed: 0 };
      this.slots.set(path, slot);
    }
    slot.refs++;
    slot.lastUsed = ++this.tick;
    try {
      return await fn(await slot.handle);
    } finally {
      slot.refs--;
      await this.evict();
    }
  }

  /** Closes the cached handle of `path` if it is idle (e.g. after the file was replaced). */
  async forget(path: string): Promise<void> {
    const slot = this.slots.get(path);
    if (slot && slot.refs === 0) {
      this.slots.delete(path);
      await closeQuietly(slot.handle);
    }
  }

  /** Closes every idle handle; handles in use are closed by the evictions that follow their use. */
  async closeAll(): Promise<void> {
    const idle = [...this.slots].filter(([, s]) => s.refs === 0);
    for (const [p] of idle) this.slots.delete(p);
    await Promise.all(idle.map(([, s]) => closeQuietly(s.handle)));
  }

  private async evict(): Promise<void> {
    if (this.slots.size <= this.maxOpen) return;
    const idle = [...this.slots].filter(([, s]) => s.refs === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    const victims = idle.slice(0, this.slots.size - this.maxOpen);
    for (const [p] of victims) this.slots.delete(p);
    await Promise.all(victims.map(([, s]) => closeQuietly(s.handle)));
  }
}

async function closeQuietly(h: Promise<FileHandle>): Promise<void> {
  try {
    await (await h).close();
  } catch {
    // A handle that failed to open or is already closed needs no closing.
  }
}
