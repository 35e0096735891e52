/**
 * A bounded on-disk cache of tensor byte ranges read from the Hub (worker `--cache-dir`,
 * `--cache-size`). Ranges of a pinned commit never change, so an entry is valid forever; when the
 * cache grows past its size the least recently used entries (by mtime) are deleted. Evolve
 * candidates re-read the same tensors: they then come from local disk instead of the network.
 * Several threads and processes may share one directory: entries are written to a temporary
 * name and renamed, and deleting an entry someone else already deleted is harmless.
 */
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from "node:fs";
import { join } from "node:path";

export class RangeCache {
  private used?: number;
  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  private pathOf(key: string): string {
    const h = createHash("sha256").update(key).digest("hex");
    return join(this.dir, h.slice(0, 2), h);
  }

  /** Fills `into` from the cache; false on a miss. */
  get(key: string, into: Uint8Array): boolean {
    const p = this.pathOf(key);
    let fd: number;
    try {
      fd = openSync(p, "r");
    } catch {
      return false;
    }
    try {
      if (statSync(p).size !== into.byteLength) return false;
      let done = 0;
      while (done < into.byteLength) {
        const n = readSync(fd, into, done, into.byteLength - done, done);
        if (n === 0) return false;
        done += n;
      }
      const now = new Date();
      utimesSync(p, now, now);
      return true;
    } catch {
      return false;
    } finally {
      closeSync(fd);
    }
  }

  /** The range `key` of `length` bytes in a new buffer (no zero-fill: every byte is read); undefined on a miss. */
  take(key: string, length: number): Uint8Array | undefined {
    let fd: number;
    try {
      fd = openSync(this.pathOf(key), "r");
    } catch {
      return undefined;
    }
    closeSync(fd);
    const buf = Buffer.allocUnsafe(length);
    return this.get(key, buf) ? buf : undefined;
  }

  /** Stores a range, given whole or as consecutive chunks. */
  put(key: string, data: Uint8Array | readonly Uint8Array[]): void {
    const chunks = data instanceof Uint8Array ? [data] : data;
    const size = chunks.reduce((n, c) => n + c.byteLength, 0);
    if (size > this.maxBytes) return;
    const p = this.pathOf(key);
    try {
      mkdirSync(join(p, ".."), { recursive: true });
      const tmp = `${p}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      const fd = openSync(tmp, "w");
      try {
        for (const c of chunks) for (let done = 0; done < c.byteLength;) done += writeSync(fd, c, done, c.byteLength - done);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, p);
      this.used = (this.used ?? this.scan().total) + size;
      if (this.used > this.maxBytes) this.evict();
    } catch {
      // A full or read-only cache disk must not fail the merge: the range was read already.
    }
  }

  private scan(): { total: number; entries: { path: string; size: number; mtime: number }[] } {
    const entries: { path: string; size: number; mtime: number }[] = [];
    let total = 0;
    let subdirs: string[] = [];
    try {
      subdirs = readdirSync(this.dir);
    } catch {
      return { total, entries };
    }
    for (const d of subdirs) {
      let names: string[] = [];
      try {
        names = readdirSync(join(this.dir, d));
      } catch {
        continue;
      }
      for (const n of names) {
        if (n.endsWith(".tmp")) continue;
        try {
          const st = statSync(join(this.dir, d, n));
          entries.push({ path: join(this.dir, d, n), size: st.size, mtime: st.mtimeMs });
          total += st.size;
        } catch {
          // deleted meanwhile
        }
      }
    }
    return { total, entries };
  }

  /** Deletes least recently used entries until the cache is at 90 % of its size. */
  private evict(): void {
    const { total, entries } = this.scan();
    let used = total;
    entries.sort((a, b) => a.mtime - b.mtime);
    for (const e of entries) {
      if (used <= this.maxBytes * 0.9) break;
      try {
        unlinkSync(e.path);
      } catch {
        // already gone
      }
      used -= e.size;
    }
    this.used = used;
  }
}
