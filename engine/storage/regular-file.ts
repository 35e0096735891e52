/**
 * Opens checkpoint files only when they are regular files. A FIFO given as `model.safetensors`
 * would block `open(2)` forever, and a device or socket has no bytes to merge; opening with
 * O_NONBLOCK never waits for a writer, so the type is checked with fstat on the opened descriptor
 * (no race between check and use) before anything is read.
 */
import { closeSync, constants, fstatSync, openSync, type Stats } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { CheckpointError } from "../errors/index.js";

const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

export function fileTypeOf(st: Stats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a named pipe (FIFO)";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  return "not a regular file";
}

/** The error text without the path: "is a named pipe (FIFO), not a regular file; ...". */
export function notRegularDetail(st: Stats): string {
  return `is ${fileTypeOf(st)}, not a regular file; replace it with the real file`;
}

export function notRegularFile(path: string, st: Stats): CheckpointError {
  return new CheckpointError(path, notRegularDetail(st));
}

/** Opens `path` read-only, or throws CheckpointError when it is not a regular file. Open errors (ENOENT, EACCES) are thrown as they are. */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const fh = await open(path, READ_FLAGS);
  let st: Stats;
  try {
    st = await fh.stat();
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
  if (!st.isFile()) {
    await fh.close().catch(() => undefined);
    throw notRegularFile(path, st);
  }
  return fh;
}

/** openRegularFile for synchronous callers (the tensor reader in merge threads); returns a descriptor. */
export function openRegularFileSync(path: string): number {
  const fd = openSync(path, READ_FLAGS);
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw notRegularFile(path, st);
  }
  return fd;
}

/** Reads a whole regular file (index, config.json). */
export async function readRegularFile(path: string): Promise<Buffer> {
  const fh = await openRegularFile(path);
  try {
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** Throws when `path` exists but is not a regular file (following symlinks); false when it does not exist. */
export async function isRegularFileIfPresent(path: string): Promise<boolean> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  if (!st.isFile()) throw notRegularFile(path, st);
  return true;
}
