/**
 * Opens a pinned Hub checkpoint `hf://org/name@<sha>` from headers only: the file list (the HF
 * cache's snapshot when it holds the weights' index, else the revision API), the index, each
 * shard's 8-byte length and JSON header by Range requests, and config.json. No tensor bytes.
 */
import { readFile } from "node:fs/promises";
import { CheckpointError } from "../../errors/index.js";
import { groupByShard, INDEX_FILE, parseConfig, parseIndex, readShards, SINGLE_FILE, type Checkpoint } from "../checkpoint.js";
import type { OpenByteSourceOptions } from "../open-byte-source.js";
import { cachedFile, isMarkedAbsent } from "./hf-cache.js";
import { offlineMissingError, sharedHubClient } from "./hub-byte-source.js";
import { hubUri, parsePinnedHubUri } from "./hub-reference.js";

/** A small repository file whole: from the cache, else the Hub; undefined when the repo lacks it. */
export async function readHubSmallFile(repo: string, sha: string, file: string, listing?: ReadonlySet<string>): Promise<Uint8Array | undefined> {
  const { client, settings } = sharedHubClient();
  const p = cachedFile(settings.cacheDir, repo, sha, file);
  if (p) return readFile(p);
  if (listing && !listing.has(file)) return undefined;
  if (settings.offline) throw offlineMissingError({ repo, sha, file }, settings.cacheDir);
  return client.getSmallFile(repo, sha, file);
}

/** The repository's files at `sha`: from the revision API (cached per process). */
export async function listHubFiles(repo: string, sha: string): Promise<Set<string>> {
  const { client } = sharedHubClient();
  return new Set((await client.revisionInfo(repo, sha)).files.keys());
}

export async function openHubCheckpoint(location: string, opts: OpenByteSourceOptions = {}): Promise<Checkpoint> {
  const { repo, sha } = parsePinnedHubUri(location);
  const { settings } = sharedHubClient();
  const inCache = (f: string) => cachedFile(settings.cacheDir, repo, sha, f) !== undefined;
  // The cache answers when it holds the weights' entry file; otherwise ask the Hub for the list.
  const listing = inCache(INDEX_FILE) || inCache(SINGLE_FILE) || settings.offline ? undefined : await listHubFiles(repo, sha);
  const has = (f: string) => (listing ? listing.has(f) : inCache(f));
  const where = `hub ${repo}@${sha}`;
  let files: string[];
  let tensors: Checkpoint["tensors"];
  if (has(INDEX_FILE)) {
    const indexUri = hubUri(repo, sha, INDEX_FILE);
    const raw = await readHubSmallFile(repo, sha, INDEX_FILE, listing);
    const shards = groupByShard(parseIndex(indexUri, raw!));
    for (const s of shards.keys()) {
      if (listing && !listing.has(s))
        throw new CheckpointError(indexUri, `shard ${s} named in the index does not exist in ${repo} at ${sha}`, { code: "CHECKPOINT_MISSING" });
    }
    files = [...shards.keys()].map((s) => hubUri(repo, sha, s));
    tensors = await readShards(
      [...shards].map(([s, names]) => ({ uri: hubUri(repo, sha, s), names })),
      indexUri,
      opts,
    );
  } else if (has(SINGLE_FILE)) {
    files = [hubUri(repo, sha, SINGLE_FILE)];
    tensors = await readShards([{ uri: files[0], names: undefined }], undefined, opts);
  } else if (settings.offline) {
    throw offlineMissingError({ repo, sha, file: `${INDEX_FILE} or ${SINGLE_FILE}` }, settings.cacheDir);
  } else {
    const found = [...listing!].sort();
    const shown = found.length > 12 ? [...found.slice(0, 12), `... ${found.length - 12} more`] : found;
    throw new CheckpointError(
      where,
      `no ${SINGLE_FILE} or ${INDEX_FILE} in the repository (found: ${shown.join(", ") || "nothing"}); mergeloom reads safetensors weights`,
      { code: "CHECKPOINT_MISSING" },
    );
  }
  // Offline, a config.json neither cached nor marked absent (.no_exist, as huggingface_hub marks it) is an error, not a silent omission.
  const cfgWanted = listing ? listing.has("config.json") : inCache("config.json") || !isMarkedAbsent(settings.cacheDir, repo, sha, "config.json");
  const cfgRaw = cfgWanted ? await readHubSmallFile(repo, sha, "config.json", listing) : undefined;
  const config = cfgRaw ? parseConfig(hubUri(repo, sha, "config.json"), cfgRaw) : undefined;
  return { ref: location, location, files, tensors, config };
}
