/** The files of a pinned Hub PEFT adapter in the HF cache (downloaded there when missing). */
import { downloadToCache, type DownloadResult } from "./download-to-cache.js";
import { cachedFile, snapshotDir } from "./hf-cache.js";
import { sharedHubClient } from "./hub-byte-source.js";

export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
export const ADAPTER_FILES = ["adapter_config.json", ADAPTER_WEIGHTS];

export async function fetchAdapterFiles(repo: string, revision: string, sha: string): Promise<Pick<DownloadResult, "dir">> {
  const { settings } = sharedHubClient();
  // Offline, or already cached: use the snapshot as it is (a missing file is named when it is opened).
  if (settings.offline || ADAPTER_FILES.every((f) => cachedFile(settings.cacheDir, repo, sha, f) !== undefined)) {
    return { dir: snapshotDir(settings.cacheDir, repo, sha) };
  }
  return downloadToCache(repo, revision, sha, (files) => ADAPTER_FILES.filter((f) => files.has(f)));
}
