/**
 * Random access to the bytes of one file, local or remote. Workers read tensor byte ranges
 * through this interface so that the merge code never cares where a checkpoint lives.
 */
import { CheckpointError, StorageError } from "../errors/index.js";

export interface ByteSource {
  /** Where the bytes come from (a plain path or an http(s) URL); used in error messages. */
  readonly uri: string;
  size(): Promise<number>;
  /**
   * Reads exactly `length` bytes at `offset` (into `into` when given, which must hold at least
   * `length` bytes) or throws: a CheckpointError when the file ends early, a StorageError when the
   * storage fails (retryable when a retry may help).
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * A hint that [offset, offset+length) will be read soon (posix_fadvise's WILLNEED): a remote
   * source starts fetching its start now, in parallel with the other inputs of the same tensor.
   * A promise, when returned, settles (never rejects) once those fetches are asked for.
   */
  willNeed?(offset: number, length: number): void | Promise<void>;
  /** A hint that [offset, offset+length) will not be read again soon (posix_fadvise's DONTNEED): its memory may be reused. */
  dontNeed?(offset: number, length: number): void;
  close(): Promise<void>;
}

/** Rejects negative, fractional or unsafe ranges and a too-small target buffer before any I/O. */
export function checkReadArgs(uri: string, offset: number, length: number, into?: Uint8Array): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new StorageError(`read ${uri}: invalid byte range offset=${offset} length=${length}; both must be non-negative integers`);
  }
  if (into && into.byteLength < length) {
    throw new StorageError(`read ${uri}: target buffer holds ${into.byteLength} bytes but ${length} were requested`);
  }
}

/** The error for a read that runs past the end of the file. */
export function truncatedError(uri: string, offset: number, length: number, fileSize: number | undefined): CheckpointError {
  const ends = fileSize === undefined ? "the file ends early" : `the file has only ${fileSize} bytes`;
  return new CheckpointError(uri, `wanted bytes ${offset}-${offset + length} but ${ends}; the file is truncated`);
}
