/**
 * Byte access for the merge kernels. Local files (the common case: a shared volume) are read and
 * written with positional sync calls on cached descriptors — inside a worker thread that is the
 * cheapest path and needs no extra buffer copies. Other URIs (http, synthetic) go through async
 * byte sources.
 */
import { closeSync, constants, fdatasync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { createHash, type Hash } from "node:crypto";
import { MergeloomError } from "@mergeloom/proto/errors";
import { StorageError, CheckpointError } from "../errors/index.js";
import { openRegularFileSync } from "../storage/regular-file.js";
import { fsErrorDetail } from "../storage/fs-error.js";

export interface RemoteReader {
  read(uri: string, offset: number, length: number, into: Uint8Array): Promise<void>;
  /** See ByteSource.willNeed. */
  willNeed?(uri: string, offset: number, length: number): void | Promise<void>;
  /** See ByteSource.dontNeed. */
  dontNeed?(uri: string, offset: number, length: number): void;
}

const LOCAL = /^(?:file:\/\/)?(\/.*)$/;

export function localPath(uri: string): string | undefined {
  const m = LOCAL.exec(uri);
  return m ? decodeURIComponent(m[1]) : undefined;
}

/**
 * Written bytes after which a file's dirty pages are flushed in the background: the final
 * fsync of the output then finds little left to write, instead of the whole model at the end.
 */
const FLUSH_BYTES = 64 << 20;
/** Read descriptors kept open for reuse (input shards); the least recently used beyond this are closed. */
const MAX_READ_FDS = 32;
/** A cached read descriptor unused this long is closed at the end of the next job (deleted inputs release their space). */
const READ_IDLE_MS = 30_000;

interface OpenFile {
  fd: number;
  /** Order of last use (LRU) and its time (idle closing). */
  lastUsed: number;
  usedAt: number;
}
/** Output paths whose unflushed byte counts are remembered (a shard is written by many jobs). */
const MAX_DIRTY_PATHS = 64;

/**
 * Descriptors: read descriptors are cached across jobs (inputs are the same few shards, and a
 * reopen costs a round trip on network filesystems), bounded in number and idle time. Write
 * descriptors live for one job only (`endJob`): a worker serves job after job, and an output
 * shard kept open would hold a descriptor per job and the disk space of outputs deleted since.
 */
export class TensorIO {
  private readonly reads = new Map<string, OpenFile>();
  private readonly writes = new Map<string, OpenFile>();
  /** Per output path: bytes written since its last background flush, and the flush running on it. */
  private readonly dirty = new Map<string, { bytes: number; flushing?: { fd: number; closeAfter: boolean } }>();
  private tick = 0;
  constructor(private readonly remote?: RemoteReader) {}

  private fd(path: string, write: boolean): number {
    const cache = write ? this.writes : this.reads;
    let f = cache.get(path);
    if (f === undefined) {
      let fd: number;
      try {
        // Inputs: refuse FIFOs and devices before a read could block the thread. Writes never follow a symlink.
        fd = write ? openSync(path, constants.O_RDWR | constants.O_NOFOLLOW) : openRegularFileSync(path);
      } catch (err) {
        if (err instanceof MergeloomError) throw err;
        const e = err as NodeJS.ErrnoException;
        if (write && e.code === "ELOOP") throw new StorageError(`write ${path}: refused, the output shard is a symlink`, { cause: err });
        throw new CheckpointError(path, e.code === "ENOENT" ? "file does not exist (was it moved or deleted after planning?)" : e.message, {
          cause: err,
          code: e.code === "ENOENT" ? "CHECKPOINT_MISSING" : "CHECKPOINT_INVALID",
        });
      }
      cache.set(path, (f = { fd, lastUsed: ++this.tick, usedAt: Date.now() }));
      const excess = write ? 0 : this.reads.size - MAX_READ_FDS;
      if (excess > 0) this.closeReads((_, i) => i < excess);
    }
    f.lastUsed = ++this.tick;
    f.usedAt = Date.now();
    return f.fd;
  }

  async read(uri: string, offset: number, length: number, into: Uint8Array): Promise<void> {
    const path = localPath(uri);
    if (path === undefined) {
      if (!this.remote) throw new StorageError(`read ${uri}: no reader for this URI scheme`);
      return this.remote.read(uri, offset, length, into);
    }
    const fd = this.fd(path, false);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, into, done, length - done, offset + done);
      if (n === 0) {
        const size = fstatSync(fd).size;
        throw new CheckpointError(
          path,
          `unexpected end of file at byte ${offset + done} (file has ${size} bytes); the file is truncated or changed after planning`,
        );
      }
      done += n;
    }
  }

  /** A hint that a range of a remote input will be read soon (local files need none: the page cache reads ahead). */
  willNeed(uri: string, offset: number, length: number): void | Promise<void> {
    if (localPath(uri) === undefined) return this.remote?.willNeed?.(uri, offset, length);
  }

  /** A hint that a job is done with a range of a remote input. */
  dontNeed(uri: string, offset: number, length: number): void {
    if (localPath(uri) === undefined) this.remote?.dontNeed?.(uri, offset, length);
  }

  write(uri: string, offset: number, data: Uint8Array): void {
    const path = localPath(uri);
    if (path === undefined) throw new StorageError(`write ${uri}: only local files can be written by the tensor writer`);
    const fd = this.fd(path, true);
    let done = 0;
    try {
      while (done < data.byteLength) done += writeSync(fd, data, done, data.byteLength - done, offset + done);
    } catch (err) {
      // Node's ENOSPC message names no file; say which output ran out of space.
      throw new StorageError(`write ${path}: ${fsErrorDetail(err)}`, { cause: err });
    }
    this.flushInBackground(path, fd, done);
  }

  /** Open descriptors (tests). */
  get openCount(): number {
    return this.reads.size + this.writes.size;
  }

  /**
   * Ends one merge job: closes its write descriptors (after a background flush still running on
   * one) and read descriptors idle for READ_IDLE_MS.
   */
  endJob(): void {
    for (const [path, f] of this.writes) {
      const d = this.dirty.get(path);
      if (d?.flushing?.fd === f.fd) d.flushing.closeAfter = true;
      else closeQuietly(f.fd);
    }
    this.writes.clear();
    const cutoff = Date.now() - READ_IDLE_MS;
    this.closeReads((f) => f.usedAt < cutoff);
    for (const [path, d] of this.dirty) {
      if (this.dirty.size <= MAX_DIRTY_PATHS) break;
      if (!d.flushing) this.dirty.delete(path); // oldest first (insertion order)
    }
  }

  private closeReads(pick: (f: OpenFile, indexByAge: number) => boolean): void {
    const byAge = [...this.reads].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    byAge.forEach(([path, f], i) => {
      if (!pick(f, i)) return;
      this.reads.delete(path);
      closeQuietly(f.fd);
    });
  }

  /** Starts an fdatasync on the libuv pool once enough is dirty; an optimization only (errors ignored: the output is fsynced when assembled). */
  private flushInBackground(path: string, fd: number, written: number): void {
    let d = this.dirty.get(path);
    if (!d) this.dirty.set(path, (d = { bytes: 0 }));
    d.bytes += written;
    if (d.flushing || d.bytes < FLUSH_BYTES) return;
    d.bytes = 0;
    const state = d;
    const flushing = (state.flushing = { fd, closeAfter: false });
    fdatasync(fd, () => {
      state.flushing = undefined;
      if (flushing.closeAfter) closeQuietly(fd);
    });
  }

  close(): void {
    for (const f of this.reads.values()) closeQuietly(f.fd);
    this.reads.clear();
    this.endJob();
    this.dirty.clear();
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing holds it.
  }
}

/** Checksums a tensor written to `discard://` in pieces, in order. */
export function newChecksum(): Hash {
  return createHash("sha256");
}
