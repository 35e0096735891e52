/**
 * The Hugging Face cache, in huggingface_hub's layout (file_download.py), shared with Python tools:
 *
 *   {cache}/models--org--name/blobs/<etag>            file contents (sha256 for LFS files, git blob sha1 otherwise)
 *   {cache}/models--org--name/blobs/<etag>.incomplete a download in progress (resumed from its size)
 *   {cache}/models--org--name/refs/<branch or tag>    the commit sha that revision pointed at
 *   {cache}/models--org--name/snapshots/<sha>/<path>  relative symlink to ../../blobs/<etag>
 */
import { existsSync, statSync } from "node:fs";
import { mkdir, readdir, readFile, rename, stat, symlink, unlink, writeFile, lstat } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { StorageError } from "../../errors/index.js";
import { checkRepoFilePath, COMMIT_SHA } from "./hub-reference.js";

export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.replace("/", "--")}`);
}

export function snapshotDir(cacheDir: string, repo: string, sha: string): string {
  return join(repoFolder(cacheDir, repo), "snapshots", sha);
}

/** The commit a revision points at according to the cache (refs/<rev>, or a sha with a snapshot). */
export async function cachedCommit(cacheDir: string, repo: string, revision: string): Promise<string | undefined> {
  if (COMMIT_SHA.test(revision)) return existsSync(snapshotDir(cacheDir, repo, revision)) ? revision : undefined;
  try {
    const sha = (await readFile(join(repoFolder(cacheDir, repo), "refs", revision), "utf8")).trim();
    return COMMIT_SHA.test(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

/** The snapshot path of a file when the cache holds it (a dangling symlink does not count). */
export function cachedFile(cacheDir: string, repo: string, sha: string, file: string): string | undefined {
  checkRepoFilePath(`${repo}@${sha}`, file);
  const p = join(snapshotDir(cacheDir, repo, sha), file);
  try {
    // No exception for the usual miss (ENOENT): every Hub read of a file the cache lacks asks again.
    return statSync(p, { throwIfNoEntry: false })?.isFile() ? p : undefined;
  } catch {
    return undefined;
  }
}

/** Every file under a cached snapshot, as repository paths. */
export async function listCachedSnapshot(cacheDir: string, repo: string, sha: string): Promise<string[]> {
  const root = snapshotDir(cacheDir, repo, sha);
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if ((await stat(p).catch(() => undefined))?.isFile()) out.push(relative(root, p).split("\\").join("/"));
    }
  };
  await walk(root);
  return out.sort();
}

export async function writeRef(cacheDir: string, repo: string, revision: string, sha: string): Promise<void> {
  if (COMMIT_SHA.test(revision)) return; // huggingface_hub writes refs for branches and tags only
  const p = join(repoFolder(cacheDir, repo), "refs", revision);
  await mkdir(dirname(p), { recursive: true });
  const tmp = `${p}.${process.pid}.tmp`;
  await writeFile(tmp, sha);
  await rename(tmp, p);
}

export function blobPath(cacheDir: string, repo: string, etag: string): string {
  if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(etag)) throw new StorageError(`cache ${repo}: blob name '${etag}' is not a git or sha256 hash`);
  return join(repoFolder(cacheDir, repo), "blobs", etag);
}

/** snapshots/<sha>/<file> → the blob, as a relative symlink (what huggingface_hub creates). */
export async function linkSnapshotFile(cacheDir: string, repo: string, sha: string, file: string, etag: string): Promise<string> {
  checkRepoFilePath(`${repo}@${sha}`, file);
  const link = join(snapshotDir(cacheDir, repo, sha), file);
  await mkdir(dirname(link), { recursive: true });
  const target = relative(dirname(link), blobPath(cacheDir, repo, etag));
  const prev = await lstat(link).catch(() => undefined);
  if (prev) await unlink(link);
  await symlink(target, link);
  return link;
}

/** huggingface_hub's `.no_exist/<sha>/<file>` marker: the file is known not to exist at that commit. */
export function isMarkedAbsent(cacheDir: string, repo: string, sha: string, file: string): boolean {
  return existsSync(join(repoFolder(cacheDir, repo), ".no_exist", sha, file));
}

export async function markAbsent(cacheDir: string, repo: string, sha: string, file: string): Promise<void> {
  checkRepoFilePath(`${repo}@${sha}`, file);
  const p = join(repoFolder(cacheDir, repo), ".no_exist", sha, file);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, "");
}
