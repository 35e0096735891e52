/**
 * Atomic output directories: everything is written into `<final>.mergeloom-tmp-XXXXXX` next to the
 * final path and renamed into place on commit, so a crashed or failed merge never leaves a
 * half-written model where a user (or a loader) expects a finished one.
 *
 * Safety: every temp dir (and so every finished output) holds a `.mergeloom-output` marker with
 * the job id and the owner's pid and host. `--overwrite` replaces only a directory that carries the
 * marker and holds nothing but model files — never `/`, the home directory, the current directory
 * or one of its ancestors. One run at a time writes an output (see output-lock.ts).
 */
import { chmod, lstat, mkdir, mkdtemp, open, readdir, readFile, realpath, rename, rm, writeFile } from "node:fs/promises";
import { rmSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join, resolve, sep } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import { StorageError } from "../errors/index.js";
import { OutputLock } from "./output-lock.js";
import { currentOwner, isOwnerDead, parseOwner } from "./process-owner.js";

const TMP_TAG = ".mergeloom-tmp-";
const OLD_TAG = ".mergeloom-old-";
/** Marker file in every temp dir and finished output: `{tool, jobId, pid, host, createdAt}`. */
export const OUTPUT_MARKER = ".mergeloom-output";

/** Files a model output may hold; anything else (or any subdirectory) means the directory is not only an output. */
const OUTPUT_FILE =
  /^(?:[^/]+\.safetensors|[^/]+\.json|README\.md|mergekit_config\.yml|tokenizer\.model|merges\.txt|vocab\.txt|[^/]+\.jinja|[^/]+\.tiktoken|\.mergeloom-output)$/;

export interface OutputDirOptions {
  overwrite?: boolean;
  /** Recorded in the marker (the merge job writing this output). */
  jobId?: string;
}

export class OutputDir {
  readonly finalPath: string;
  /** The temporary directory to write into; becomes `finalPath` on commit. */
  readonly path: string;
  private readonly overwrite: boolean;
  private readonly lock: OutputLock;
  private state: "open" | "committed" | "aborted" = "open";

  private constructor(finalPath: string, path: string, overwrite: boolean, lock: OutputLock) {
    this.finalPath = finalPath;
    this.path = path;
    this.overwrite = overwrite;
    this.lock = lock;
  }

  static async create(finalPath: string, opts: OutputDirOptions = {}): Promise<OutputDir> {
    const final = await checkOutputPath(finalPath);
    const overwrite = opts.overwrite ?? false;
    try {
      await mkdir(dirname(final), { recursive: true });
    } catch (err) {
      throw new StorageError(`create output ${finalPath}: ${(err as Error).message}`, { cause: err });
    }
    const lock = await OutputLock.acquire(final, { jobId: opts.jobId });
    try {
      if (await exists(final)) {
        if (!overwrite) throw outputExists(finalPath);
        await assertReplaceable(final);
      }
      // Under the lock no other run of this output is live, so dead owners' leftovers can go.
      await removeStaleOutputTemps(final);
      let tmp: string;
      try {
        tmp = await mkdtemp(final + TMP_TAG);
        await chmod(tmp, 0o755); // mkdtemp makes it private; a model directory is meant to be shared
        await writeMarker(tmp, opts.jobId);
      } catch (err) {
        throw new StorageError(`create output ${finalPath}: ${(err as Error).message}`, { cause: err });
      }
      return new OutputDir(final, tmp, overwrite, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /**
   * Re-opens the temporary directory of an interrupted run (a restarted coordinator resuming its
   * job); it must sit next to `finalPath` with this module's temp naming.
   */
  static async adopt(finalPath: string, tmpPath: string, opts: OutputDirOptions = {}): Promise<OutputDir> {
    const final = await checkOutputPath(finalPath);
    const tmp = resolve(tmpPath);
    if (dirname(tmp) !== dirname(final) || !basename(tmp).startsWith(basename(final) + TMP_TAG)) {
      throw new StorageError(`resume output ${finalPath}: ${tmpPath} is not a temporary directory of this output`);
    }
    const lock = await OutputLock.acquire(final, { jobId: opts.jobId });
    try {
      if (!(await exists(tmp))) throw new StorageError(`resume output ${finalPath}: temporary directory ${tmpPath} is gone`);
      if (await exists(final)) {
        if (!opts.overwrite) throw outputExists(finalPath);
        await assertReplaceable(final);
      }
      await writeMarker(tmp, opts.jobId); // this process owns the temp dir now
      return new OutputDir(final, tmp, opts.overwrite ?? false, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
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
      await assertReplaceable(this.finalPath); // it may have changed since the run started
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
    await this.lock.release();
  }

  /** Removes the temp dir; safe to call more than once and after a failed commit. */
  async abort(): Promise<void> {
    if (this.state === "committed") return;
    this.state = "aborted";
    await rm(this.path, { recursive: true, force: true });
    await this.lock.release();
  }

  /** abort() for exit paths that cannot wait (a second signal while cleaning up). */
  abortSync(): void {
    if (this.state === "committed") return;
    this.state = "aborted";
    rmSync(this.path, { recursive: true, force: true });
    this.lock.releaseSync();
  }
}

/**
 * Resolves the output path, refusing paths no merge may ever replace: empty, `/`, the home
 * directory, the current directory and its ancestors (symlinks resolved).
 */
export async function checkOutputPath(finalPath: string): Promise<string> {
  if (finalPath.trim() === "") throw new MergeloomError("OUTPUT_UNSAFE", "write output: the output path is empty; pass a new directory with -o DIR");
  const final = resolve(finalPath);
  const real = await realpathOfPossiblyMissing(final);
  const cwd = await realpath(process.cwd()).catch(() => resolve(process.cwd()));
  const home = await realpath(homedir()).catch(() => resolve(homedir()));
  let why: string | undefined;
  if (real === sep) why = "is the filesystem root";
  else if (real === home) why = "is the home directory";
  else if (real === cwd) why = "is the current directory";
  else if (cwd.startsWith(real + sep)) why = "contains the current directory";
  if (why) throw unsafeOutput(finalPath, `${final} ${why}; a merge never replaces it — choose a new directory for the output`);
  return final;
}

/** The real path of `p`, resolving symlinks in its longest existing prefix. */
export async function realpathOfPossiblyMissing(p: string): Promise<string> {
  const abs = resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return join(await realpath(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return abs;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

/** Refuses to replace anything that is not provably an earlier mergeloom output holding only model files. */
async function assertReplaceable(final: string): Promise<void> {
  const st = await lstat(final);
  if (st.isSymbolicLink())
    throw unsafeOutput(final, `${final} is a symbolic link, not a mergeloom output; --overwrite never replaces it — remove it yourself or choose another path`);
  if (!st.isDirectory())
    throw unsafeOutput(final, `${final} is a file, not a mergeloom output; --overwrite never replaces it — remove it yourself or choose another path`);
  const marker = parseOwner(await readFile(join(final, OUTPUT_MARKER), "utf8").catch(() => ""));
  if (!marker || marker.tool !== "mergeloom") {
    throw unsafeOutput(
      final,
      `${final} is not a mergeloom output (no ${OUTPUT_MARKER} marker); --overwrite only replaces earlier mergeloom outputs — remove it yourself or choose another path`,
    );
  }
  const foreign: string[] = [];
  for (const ent of await readdir(final, { withFileTypes: true })) {
    if (!ent.isFile() || !OUTPUT_FILE.test(ent.name)) foreign.push(ent.isDirectory() ? `${ent.name}/` : ent.name);
  }
  if (foreign.length) {
    const shown = foreign.slice(0, 3).join(", ") + (foreign.length > 3 ? `, ... ${foreign.length - 3} more` : "");
    throw unsafeOutput(
      final,
      `${final} holds files that are not part of a model output (${shown}); --overwrite never deletes them — move them out or choose another path`,
    );
  }
}

async function writeMarker(dir: string, jobId: string | undefined): Promise<void> {
  const marker = { tool: "mergeloom", jobId: jobId ?? null, ...currentOwner(), createdAt: Date.now() };
  // Written aside and renamed: a reader (a concurrent run's stale-temp sweep, a test) never sees half a marker.
  const tmp = join(dir, `${OUTPUT_MARKER}.${process.pid}.part`);
  await writeFile(tmp, JSON.stringify(marker) + "\n", { mode: 0o644 });
  await rename(tmp, join(dir, OUTPUT_MARKER));
}

function unsafeOutput(path: string, detail: string): MergeloomError {
  return new MergeloomError("OUTPUT_UNSAFE", `write output ${path}: ${detail}`);
}

/**
 * Removes leftovers of crashed runs next to `finalPath` (temp and moved-aside dirs). A leftover
 * whose marker names an owner is removed only when that owner is provably dead (same host, pid
 * not running); one without a marker (older versions) only when older than `olderThanMs`
 * (default one hour). A live owner's, or another host's, temp dir is never touched. Moved-aside
 * old outputs go only once the final output exists.
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
  const finalExists = await exists(final);
  const removed: string[] = [];
  for (const name of names) {
    if (!prefixes.some((p) => name.startsWith(p))) continue;
    const p = join(parent, name);
    const st = await lstat(p).catch(() => undefined);
    if (!st || !st.isDirectory()) continue;
    if (name.startsWith(prefixes[1])) {
      // A moved-aside old output: garbage once the new output is in place; until then it may be
      // the only copy of the previous model (a crash between the two renames of a commit), so it stays.
      if (!finalExists) continue;
    } else {
      const owner = parseOwner(await readFile(join(p, OUTPUT_MARKER), "utf8").catch(() => ""));
      if (owner ? !isOwnerDead(owner) : st.mtimeMs > cutoff) continue;
    }
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
