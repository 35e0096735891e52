/**
 * ByteSource over a pinned Hub file `hf://org/name@<sha>/<file>`: the HF cache when it holds the
 * file, then the worker's range cache, then HTTP range reads from `{HF_ENDPOINT}/{repo}/resolve/{sha}/{file}`.
 * With HF_HUB_OFFLINE=1 only the cache is used, and a missing file is named.
 */
import { CheckpointError, StorageError } from "../../errors/index.js";
import { checkReadArgs, truncatedError, type ByteSource } from "../byte-source.js";
import { FileByteSource } from "../file-byte-source.js";
import { cachedFile } from "./hf-cache.js";
import { HubClient } from "./hub-client.js";
import { parsePinnedHubUri, type PinnedHubFile } from "./hub-reference.js";
import { hubSettings, type HubSettings } from "./hub-settings.js";
import { countCacheBytes } from "./hub-stats.js";
import { RangeCache } from "./range-cache.js";

let shared: { settings: HubSettings; client: HubClient; ranges?: RangeCache } | undefined;

/** One client (connection pool, request cap, redirect targets) per process or thread. */
export function sharedHubClient(): { client: HubClient; ranges?: RangeCache; settings: HubSettings } {
  const settings = hubSettings();
  if (shared?.settings !== settings) {
    const ranges = settings.rangeCacheDir && settings.rangeCacheBytes ? new RangeCache(settings.rangeCacheDir, settings.rangeCacheBytes) : undefined;
    shared = { settings, client: new HubClient(settings), ranges };
  }
  return shared;
}

export function offlineMissingError(pin: PinnedHubFile, cacheDir: string): CheckpointError {
  return new CheckpointError(
    `hub ${pin.repo}@${pin.sha}/${pin.file}`,
    `HF_HUB_OFFLINE is set and the Hugging Face cache (${cacheDir}) does not hold this file; run \`mergeloom download CONFIG\` while online, or unset HF_HUB_OFFLINE`,
    { code: "CHECKPOINT_MISSING" },
  );
}

export class HubByteSource implements ByteSource {
  readonly uri: string;
  private readonly pin: PinnedHubFile & { file: string };
  private local?: ByteSource;
  private knownSize?: number;

  constructor(uri: string) {
    this.uri = uri;
    const pin = parsePinnedHubUri(uri);
    if (pin.file === undefined) throw new StorageError(`open ${uri}: names a repository, not a file`);
    this.pin = { ...pin, file: pin.file };
  }

  private cached(): ByteSource | undefined {
    if (this.local) return this.local;
    const { settings } = sharedHubClient();
    const p = cachedFile(settings.cacheDir, this.pin.repo, this.pin.sha, this.pin.file);
    if (p) this.local = new FileByteSource(p);
    return this.local;
  }

  async size(): Promise<number> {
    const local = this.cached();
    if (local) return local.size();
    if (this.knownSize !== undefined) return this.knownSize;
    const { client, settings } = sharedHubClient();
    if (settings.offline) throw offlineMissingError(this.pin, settings.cacheDir);
    const info = await client.revisionInfo(this.pin.repo, this.pin.sha);
    let size = info.files.get(this.pin.file)?.size;
    if (size === undefined) size = (await client.fileMetadata(this.pin.repo, this.pin.sha, this.pin.file)).size;
    if (size === undefined) throw new StorageError(`stat ${this.uri}: the Hub reports no size for this file (no X-Linked-Size or Content-Length)`);
    this.knownSize = size;
    return size;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    checkReadArgs(this.uri, offset, length, into);
    const local = this.cached();
    if (local) {
      const got = await local.read(offset, length, into);
      countCacheBytes(length);
      return got;
    }
    const buf = into ? into.subarray(0, length) : new Uint8Array(length);
    if (length === 0) return buf;
    const { client, settings, ranges } = sharedHubClient();
    if (settings.offline) throw offlineMissingError(this.pin, settings.cacheDir);
    const size = await this.size();
    if (offset + length > size) throw truncatedError(this.uri, offset, length, size);
    const key = `${this.uri}:${offset}:${length}`;
    if (ranges?.get(key, buf)) {
      countCacheBytes(length);
      return buf;
    }
    await client.readRange(this.pin.repo, this.pin.sha, this.pin.file, offset, length, buf);
    ranges?.put(key, buf);
    return buf;
  }

  async close(): Promise<void> {
    await this.local?.close();
  }
}
