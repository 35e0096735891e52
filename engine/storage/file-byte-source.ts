/** ByteSource over a local file: positional reads on a FileHandle, looping over short reads. */
import type { FileHandle } from "node:fs/promises";
import { checkReadArgs, truncatedError, type ByteSource } from "./byte-source.js";
import type { FileHandlePool } from "./file-handle-pool.js";
import { fsError } from "./fs-error.js";
import { openRegularFile } from "./regular-file.js";
import { assertInsideRoots } from "./storage-roots.js";

export interface FileByteSourceOptions {
  /** When set, the file must resolve (symlinks included) to a path inside one of these roots. */
  storageRoots?: readonly string[];
  /** Share open handles with other sources; without it the source owns one handle. */
  pool?: FileHandlePool;
}

export class FileByteSource implements ByteSource {
  readonly uri: string;
  private readonly opts: FileByteSourceOptions;
  private resolved?: Promise<string>;
  private own?: Promise<FileHandle>;
  private closed = false;

  constructor(path: string, opts: FileByteSourceOptions = {}) {
    this.uri = path;
    this.opts = opts;
  }

  async size(): Promise<number> {
    return this.withHandle(async (fh, path) => {
      try {
        return (await fh.stat()).size;
      } catch (err) {
        throw fsError("stat", path, err);
      }
    });
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    checkReadArgs(this.uri, offset, length, into);
    const buf = into ? into.subarray(0, length) : new Uint8Array(length);
    if (length === 0) return buf;
    return this.withHandle(async (fh, path) => {
      await readFully(fh, path, this.uri, buf, offset);
      return buf;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const own = this.own;
    this.own = undefined;
    if (own)
      await own.then(
        (fh) => fh.close(),
        () => undefined,
      );
  }

  private async withHandle<T>(fn: (fh: FileHandle, path: string) => Promise<T>): Promise<T> {
    if (this.closed) throw fsError("read", this.uri, new Error("source is closed"));
    this.resolved ??= this.opts.storageRoots ? assertInsideRoots(this.uri, this.opts.storageRoots) : Promise.resolve(this.uri);
    const path = await this.resolved;
    if (this.opts.pool) return this.opts.pool.use(path, (fh) => fn(fh, path));
    this.own ??= openRegularFile(path).catch((err: unknown) => {
      this.own = undefined;
      throw fsError("open", this.uri, err);
    });
    return fn(await this.own, path);
  }
}

/** Fills `buf` from `offset`; a read returning 0 bytes before the end means the file is truncated. */
export async function readFully(fh: FileHandle, path: string, uri: string, buf: Uint8Array, offset: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, done, buf.byteLength - done, offset + done));
    } catch (err) {
      throw fsError("read", path, err);
    }
    if (n === 0) {
      let size: number | undefined;
      try {
        size = (await fh.stat()).size;
      } catch {
        size = undefined;
      }
      throw truncatedError(uri, offset, buf.byteLength, size);
    }
    done += n;
  }
}
