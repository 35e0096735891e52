/**
 * Atomic output directories: everything is written into `<final>.mergeloom-tmp-XXXXXX` next to the
 * final path and renamed into place on commit, so a crashed or failed merge never leaves a
 * half-written model where a user (or a loader) expects a finished one.
 */
import { chmod, lstat, mkdir, mkdtemp, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { MergeloomError, StorageError } from "../../proto/errors.js";

const TMP_TAG = ".mergeloom-tmp-";
const OLD_TAG = ".mergeloom-old-";

export class OutputDir {
  readonly finalPath: string;
  /** The temporary directory to write into; becomes `finalPath` on commit. */
  readonly path: string;
  private readonly overwrite: boolean;
  private state: "open" | "committed" | "aborted" = "open";

  private constructor(finalPath: string, path: string, overwrite: boolean) {
    this.finalPath = finalPath;
    this.path = path;
    this.overwrite = overwrite;
  }

  static async create(finalPath: string, opts: { overwrite?: boolean } = {}): Promise<OutputDir> {
    const final = resolve(finalPath);
    const overwrite = opts.overwrite ?? false;
    if (!overwrite && (await exists(final))) throw outputExists(finalPath);
    try {
      await mkdir(dirname(final), { recursive: true });
      const tmp = await mkdtemp(final + TMP_TAG);
      await chmod(tmp, 0o755); // mkdtemp makes it private; a model directory is meant to be shared
      return new OutputDir(final, tmp, overwrite);
    } catch (err) {
      throw new StorageError(`create output ${finalPath}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Re-opens the temporary directory of an interrupted run (a restarted coordinator resuming its
   * job); it must sit next to `finalPath` with this module's temp naming.
   */
  static async adopt(finalPath: string, tmpPath: string, opts: { overwrite?: boolean } = {}): Promise<OutputDir> {
    const final = resolve(finalPath);
    const tmp = resolve(tmpPath);
    if (dirname(tmp) !== dirname(final) || !basename(tmp).startsWith(basename(final) + TMP_TAG)) {
      throw new StorageError(`resume output ${finalPath}: ${tmpPath} is not a temporary directory of this output`);
    }
    if (!(await exists(tmp))) throw new StorageError(`resume output ${finalPath}: temporary directory ${tmpPath} is gone`);
    if (!opts.overwrite && (await exists(final))) throw outputExists(finalPath);
    return new OutputDir(final, tmp, opts.overwrite ?? false);
  }

  /** Flushes every file to disk, then renames the temp dir to the final path. */
  async commit(): Promise<void> {
    if (this.state !== "open") throw new StorageError(`commit output ${this.finalPath}: the output was already ${this.state}`);
    try {
      await fsyncTree(this.path);
    } catch (err) {
      throw new StorageError(`commit output ${this.finalPath}: flushing files failed (${(err as Error).message})`, { cause: err });
    }
    let aside: string | undefined;
    if (await exists(this.finalPath)) {
      if (!this.overwrite) throw outputExists(this.finalPath);
      // Move the old output aside first so the new one appears with a single rename.
      aside = `${this.finalPath}${OLD_TAG}${basename(this.path).slice(-6)}`;
      await renameOrFail(this.finalPath, aside, this.finalPath);
    }
    try {
      await rename(this.path, this.finalPath);
    } catch (err) {
      if (aside) await rename(aside, this.finalPath).catch(() => undefined);
      throw new StorageError(`commit output ${this.finalPath}: rename from ${this.path} failed (${(err as Error).message})`, { cause: err });
    }
    this.state = "committed";
    await fsyncPath(dirname(this.finalPath)).catch(() => undefined);
    if (aside) await rm(aside, { recursive: true, force: true });
  }

  /** Removes the temp dir; safe to call more than once and after a failed commit. */
  async abort(): Promise<void> {
    if (this.state === "committed") return;
    this.state = "aborted";
    await rm(this.path, { recursive: true, force: true });
  }
}

/**
 * Removes leftovers of crashed runs next to `finalPath` (temp and moved-aside dirs) older than
 * `olderThanMs` (default one hour, so a concurrent run's live temp dir survives). Returns what was removed.
 */
export async function removeStaleOutputTemps(finalPath: string, opts: { olderThanMs?: number } = {}): Promise<string[]> {
  const final = resolve(finalPath);
  const parent = dirname(final);
  const prefixes = [basename(final) + TMP_TAG, basename(final) + OLD_TAG];
  const cutoff = Date.now() - (opts.olderThanMs ?? 3_600_000);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!prefixes.some((p) => name.startsWith(p))) continue;
    const p = join(parent, name);
    const st = await lstat(p).catch(() => undefined);
    if (!st || st.mtimeMs > cutoff) continue;
    await rm(p, { recursive: true, force: true });
    removed.push(p);
  }
  return removed;
}

function outputExists(path: string): MergeloomError {
  return new MergeloomError("OUTPUT_EXISTS", `write output ${path}: output ${path} exists; pass --overwrite or choose another path`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new StorageError(`stat ${p}: ${(err as Error).message}`, { cause: err });
  }
}

async function renameOrFail(from: string, to: string, final: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    throw new StorageError(`commit output ${final}: moving the existing output aside failed (${(err as Error).message})`, { cause: err });
  }
}

async function fsyncTree(dir: string): Promise<void> {
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) await fsyncTree(p);
    else if (ent.isFile()) await fsyncPath(p);
  }
  await fsyncPath(dir);
}

async function fsyncPath(p: string): Promise<void> {
  // Linux fsyncs read-only descriptors, for files and directories alike.
  const fh = await open(p, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
