/**
 * Fills the Hugging Face cache with files of a pinned revision, in huggingface_hub's layout, so
 * transformers and mergekit find them afterwards. Each file goes to `blobs/<etag>.incomplete`
 * (appended to on a rerun: downloads resume), is verified — sha256 against the LFS etag, or the
 * git blob sha1 for small files — then renamed to `blobs/<etag>` and linked from the snapshot.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { CheckpointError, StorageError } from "../../errors/index.js";
import { blobPath, cachedFile, linkSnapshotFile, markAbsent, snapshotDir, writeRef } from "./hf-cache.js";
import { sharedHubClient } from "./hub-byte-source.js";
import type { HubFileInfo } from "./hub-client.js";

export interface DownloadProgress {
  file: string;
  /** Bytes of this file now on disk, and its size. */
  done: number;
  size: number;
  /** Bytes this call fetched over the network so far (all files). */
  networkBytes: number;
}

export interface DownloadResult {
  /** The snapshot directory (`snapshots/<sha>`). */
  dir: string;
  downloaded: string[];
  alreadyCached: string[];
  /** Wanted files the repository does not have (marked in `.no_exist/`, as huggingface_hub does). */
  absent: string[];
  networkBytes: number;
}

export async function downloadToCache(
  repo: string,
  revision: string,
  sha: string,
  wanted: (files: ReadonlyMap<string, HubFileInfo>) => string[],
  onProgress?: (p: DownloadProgress) => void,
): Promise<DownloadResult> {
  const { client, settings } = sharedHubClient();
  if (settings.offline) {
    throw new StorageError(`download ${repo}@${revision}: HF_HUB_OFFLINE is set; unset it to download`);
  }
  const info = await client.revisionInfo(repo, sha);
  const result: DownloadResult = { dir: snapshotDir(settings.cacheDir, repo, sha), downloaded: [], alreadyCached: [], absent: [], networkBytes: 0 };
  for (const file of wanted(info.files)) {
    const f = info.files.get(file);
    if (!f) {
      await markAbsent(settings.cacheDir, repo, sha, file);
      result.absent.push(file);
      continue;
    }
    if (cachedFile(settings.cacheDir, repo, sha, file)) {
      result.alreadyCached.push(file);
      continue;
    }
    let etag = f.lfsSha256 ?? f.blobId;
    let size = f.size;
    if (!etag || size === undefined) {
      const meta = await client.fileMetadata(repo, sha, file);
      etag ??= meta.etag;
      size ??= meta.size;
    }
    if (!etag || size === undefined) throw new StorageError(`download ${repo}@${sha}/${file}: the Hub gave no etag or size for this file; cannot verify it`);
    const blob = blobPath(settings.cacheDir, repo, etag);
    if (!(await stat(blob).catch(() => undefined))) {
      const lfs = !!f.lfsSha256 || etag.length === 64;
      const fetched = await downloadBlob(repo, sha, file, blob, etag, size, lfs, (done) =>
        onProgress?.({ file, done, size: size!, networkBytes: result.networkBytes + done }),
      );
      result.networkBytes += fetched;
    }
    await linkSnapshotFile(settings.cacheDir, repo, sha, file, etag);
    result.downloaded.push(file);
  }
  await writeRef(settings.cacheDir, repo, revision, sha);
  return result;
}

/** Downloads (or resumes) one blob and verifies it; returns the bytes fetched. */
async function downloadBlob(
  repo: string,
  sha: string,
  file: string,
  blob: string,
  etag: string,
  size: number,
  lfs: boolean,
  progress: (done: number) => void,
): Promise<number> {
  const { client } = sharedHubClient();
  const incomplete = `${blob}.incomplete`;
  await mkdir(dirname(blob), { recursive: true });
  let have = (await stat(incomplete).catch(() => undefined))?.size ?? 0;
  if (have > size) {
    await unlink(incomplete);
    have = 0;
  }
  // LFS files are checked by sha256 of their content, small files by their git blob id (sha1 of "blob <size>\0" + content).
  const hash = lfs ? createHash("sha256") : createHash("sha1").update(`blob ${size}\0`);
  if (have > 0) await hashFile(incomplete, hash);
  const fh = await open(incomplete, "a");
  let done = have;
  let fetched = 0;
  try {
    if (have < size) {
      fetched = await client.download(repo, sha, file, have, async (chunk) => {
        if (done + chunk.byteLength > size)
          throw new CheckpointError(`hub ${repo}@${sha}/${file}`, `the server sent more than the ${size} bytes the Hub lists for this file`);
        await fh.write(chunk);
        hash.update(chunk);
        done += chunk.byteLength;
        progress(done);
      });
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (done !== size) {
    throw new StorageError(`download ${repo}@${sha}/${file}: got ${done} of ${size} bytes; rerun to resume from ${incomplete}`, { retryable: true });
  }
  const digest = hash.digest("hex");
  if (digest !== etag) {
    await unlink(incomplete).catch(() => undefined);
    throw new CheckpointError(
      `hub ${repo}@${sha}/${file}`,
      `downloaded bytes have ${lfs ? "sha256" : "git blob id"} ${digest} but the Hub lists ${etag}; the download was corrupted (deleted; rerun to fetch it again)`,
    );
  }
  await rename(incomplete, blob);
  return fetched;
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: 8 << 20 })) hash.update(chunk as Buffer);
}
