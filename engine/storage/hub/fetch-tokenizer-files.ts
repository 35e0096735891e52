/** The tokenizer files of a pinned Hub model in the HF cache (downloaded there when missing). */
import { TOKENIZER_FILES } from "../../output/hf-files.js";
import { downloadToCache, type DownloadResult } from "./download-to-cache.js";
import { cachedFile, isMarkedAbsent, snapshotDir } from "./hf-cache.js";
import { sharedHubClient } from "./hub-byte-source.js";

export async function fetchTokenizerFiles(repo: string, revision: string, sha: string): Promise<Pick<DownloadResult, "dir">> {
  const { settings } = sharedHubClient();
  const known = (f: string) => cachedFile(settings.cacheDir, repo, sha, f) !== undefined || isMarkedAbsent(settings.cacheDir, repo, sha, f);
  // Offline (or everything known already): copy what the cache holds.
  if (settings.offline || TOKENIZER_FILES.every(known)) return { dir: snapshotDir(settings.cacheDir, repo, sha) };
  return downloadToCache(repo, revision, sha, (files) => TOKENIZER_FILES.filter((f) => files.has(f)));
}
