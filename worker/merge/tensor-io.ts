/**
 * Byte access for the merge kernels. Local files (the common case: a shared volume) are read and
 * written with positional sync calls on cached descriptors — inside a worker thread that is the
 * cheapest path and needs no extra buffer copies. Other URIs (http, synthetic) go through async
 * byte sources.
 */
import { closeSync, fdatasync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { createHash, type Hash } from "node:crypto";
import { StorageError, CheckpointError, MergeloomError } from "../../proto/errors.js";
import { openRegularFileSync } from "../storage/regular-file.js";
import { fsErrorDetail } from "../storage/fs-error.js";

export interface RemoteReader {
  read(uri: string, offset: number, length: number, into: Uint8Array): Promise<void>;
}

const LOCAL = /^(?:file:\/\/)?(\/.*)$/;

export function localPath(uri: string): string | undefined {
  const m = LOCAL.exec(uri);
  return m ? decodeURIComponent(m[1]) : undefined;
}

/**
 * Written bytes after which a descriptor's dirty pages are flushed in the background: the final
 * fsync of the output then finds little left to write, instead of the whole model at the end.
 */
const FLUSH_BYTES = 64 << 20;

export class TensorIO {
  private readonly fds = new Map<string, number>();
  /** Per written descriptor: bytes written since its last background flush, and whether one runs. */
  private readonly dirty = new Map<number, { bytes: number; flushing: boolean }>();
  constructor(private readonly remote?: RemoteReader) {}

  private fd(path: string, write: boolean): number {
    const key = (write ? "w:" : "r:") + path;
    let fd = this.fds.get(key);
    if (fd === undefined) {
      try {
        // Inputs: refuse FIFOs and devices before a read could block the thread.
        fd = write ? openSync(path, "r+") : openRegularFileSync(path);
      } catch (err) {
        if (err instanceof MergeloomError) throw err;
        const e = err as NodeJS.ErrnoException;
        throw new CheckpointError(path, e.code === "ENOENT" ? "file does not exist (was it moved or deleted after planning?)" : e.message, {
          cause: err,
          code: e.code === "ENOENT" ? "CHECKPOINT_MISSING" : "CHECKPOINT_INVALID",
        });
      }
      this.fds.set(key, fd);
    }
    return fd;
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
        throw new CheckpointError(path, `unexpected end of file at byte ${offset + done} (file has ${size} bytes); the file is truncated or changed after planning`);
      }
      done += n;
    }
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
    this.flushInBackground(fd, done);
  }

  /** Starts an fdatasync on the libuv pool once enough is dirty; an optimization only (errors ignored: the output is fsynced when assembled). */
  private flushInBackground(fd: number, written: number): void {
    let d = this.dirty.get(fd);
    if (!d) this.dirty.set(fd, (d = { bytes: 0, flushing: false }));
    d.bytes += written;
    if (d.flushing || d.bytes < FLUSH_BYTES) return;
    d.bytes = 0;
    d.flushing = true;
    const state = d;
    fdatasync(fd, () => {
      state.flushing = false;
    });
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.dirty.clear();
  }
}

/** Checksums a tensor written to `discard://` in pieces, in order. */
export function newChecksum(): Hash {
  return createHash("sha256");
}
