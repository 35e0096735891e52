/**
 * Downloads what a merge needs of one pinned Hub model into the HF cache: config.json, the
 * tokenizer files, the safetensors index, then exactly the shards the index names (or
 * model.safetensors) — never the other weight formats a repository may also hold.
 */
import { readFile } from "node:fs/promises";
import { CheckpointError } from "../../errors/index.js";
import { groupByShard, INDEX_FILE, parseIndex, SINGLE_FILE } from "../checkpoint.js";
import { TOKENIZER_FILES } from "../../output/hf-files.js";
import { downloadToCache, type DownloadProgress, type DownloadResult } from "./download-to-cache.js";
import { cachedFile } from "./hf-cache.js";
import { sharedHubClient } from "./hub-byte-source.js";

const META_FILES = ["config.json", INDEX_FILE, ...TOKENIZER_FILES];

export async function downloadModel(repo: string, revision: string, sha: string, onProgress?: (p: DownloadProgress) => void): Promise<DownloadResult> {
  // Files the repo lacks are marked absent (.no_exist), so offline runs know they are not missing.
  const meta = await downloadToCache(repo, revision, sha, () => META_FILES, onProgress);
  const { settings } = sharedHubClient();
  const index = cachedFile(settings.cacheDir, repo, sha, INDEX_FILE);
  const weights = await downloadToCache(
    repo,
    revision,
    sha,
    (files) => {
      if (index) return [];
      if (files.has(SINGLE_FILE)) return [SINGLE_FILE];
      throw new CheckpointError(`hub ${repo}@${sha}`, `no ${SINGLE_FILE} or ${INDEX_FILE} in the repository; mergeloom reads safetensors weights`, {
        code: "CHECKPOINT_MISSING",
      });
    },
    onProgress,
  );
  let shards: DownloadResult | undefined;
  if (index) {
    const names = [...groupByShard(parseIndex(index, await readFile(index))).keys()];
    shards = await downloadToCache(
      repo,
      revision,
      sha,
      () => names,
      (p) => onProgress?.({ ...p, networkBytes: p.networkBytes + meta.networkBytes }),
    );
    if (shards.absent.length) {
      throw new CheckpointError(`hub ${repo}@${sha}/${INDEX_FILE}`, `shard ${shards.absent[0]} named in the index does not exist in the repository`, {
        code: "CHECKPOINT_MISSING",
      });
    }
  }
  const all = [meta, weights, ...(shards ? [shards] : [])];
  return {
    dir: meta.dir,
    downloaded: all.flatMap((r) => r.downloaded),
    alreadyCached: all.flatMap((r) => r.alreadyCached),
    absent: meta.absent,
    networkBytes: all.reduce((a, r) => a + r.networkBytes, 0),
  };
}
