/**
 * ByteSource over a pinned Hub file `hf://org/name@<sha>/<file>`: the HF cache when it holds the
 * file, then blocks in memory, then the worker's range cache, then HTTP range reads from
 * `{HF_ENDPOINT}/{repo}/resolve/{sha}/{file}`. With HF_HUB_OFFLINE=1 only the cache is used, and
 * a missing file is named.
 *
 * The merge kernels read a tensor in 2 MB row chunks, one input after another, pass after pass.
 * Sent as they come, those are small serial requests that leave the link idle while the kernel
 * runs. So a read inside a safetensors tensor is served from BLOCK_BYTES blocks of that tensor
 * (aligned to its start, never past its end: a worker fetches only its tasks' tensors), and the
 * next AHEAD_BLOCKS blocks of the same tensor are requested at once, in parallel, within the
 * thread's memory budget (block-pool.ts) and the client's cap on requests in flight.
 *
 * Multi-pass methods (TIES, DARE...) read a big tensor several times. Its blocks stay in memory
 * when the tensor fits the budget; a block pushed out while its tensor is still being read goes
 * to the range cache on disk, and the next pass reads it there. Blocks of finished tensors are
 * dropped — writing every input byte to disk cost more than the network it saves — unless the
 * worker was given --cache-dir (evolve re-reads the same tensors job after job: keep them all).
 */
import { CheckpointError, StorageError } from "../../errors/index.js";
import { checkReadArgs, truncatedError, type ByteSource } from "../byte-source.js";
import { FileByteSource } from "../file-byte-source.js";
import type { HttpOptions } from "../http-byte-source.js";
import { BlockPool, type BlockAlloc } from "./block-pool.js";
import { cachedFile } from "./hf-cache.js";
import { HubClient } from "./hub-client.js";
import { parsePinnedHubUri, type PinnedHubFile } from "./hub-reference.js";
import { hubSettings, type HubSettings } from "./hub-settings.js";
import { countCacheBytes } from "./hub-stats.js";
import { RangeCache } from "./range-cache.js";
import { tensorExtents, type Extent } from "./tensor-extents.js";

const BLOCK_BYTES = 8 << 20;
const AHEAD_BLOCKS = 3;
/** A tensor not read for this long is finished (its source has moved on or gone idle). */
const ACTIVE_MS = 2000;

interface Shared {
  settings: HubSettings;
  http?: HttpOptions;
  client: HubClient;
  ranges?: RangeCache;
  blocks: BlockPool;
}
let shared: Shared | undefined;
let processHttp: HttpOptions | undefined;

/** Entry points: the user's --http-retries / --http-timeout, for every Hub request this process (or thread) makes. */
export function useHubHttpOptions(http: HttpOptions | undefined): void {
  processHttp = http;
}

const sameHttp = (a: HttpOptions | undefined, b: HttpOptions | undefined) =>
  a?.retries === b?.retries && a?.timeoutMs === b?.timeoutMs && a?.retryDelayMs === b?.retryDelayMs;

/**
 * One client (connection pool, request cap, redirect targets) and one block pool per process or
 * thread. `http` (--http-retries, --http-timeout) overrides the settings' retry policy.
 */
export function sharedHubClient(httpOpts?: HttpOptions): Shared {
  const settings = hubSettings();
  const http = httpOpts ?? processHttp ?? shared?.http;
  if (!shared || shared.settings !== settings || !sameHttp(http, shared.http)) {
    const ranges = settings.rangeCacheDir && settings.rangeCacheBytes ? new RangeCache(settings.rangeCacheDir, settings.rangeCacheBytes) : undefined;
    const policy = {
      ...(http?.retries !== undefined && { retries: http.retries }),
      ...(http?.timeoutMs !== undefined && { timeoutMs: http.timeoutMs }),
      ...(http?.retryDelayMs !== undefined && { retryDelayMs: http.retryDelayMs }),
    };
    shared = { settings, http, client: new HubClient(settings, policy), ranges, blocks: new BlockPool(settings.memoryBytes) };
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
  private extents?: Promise<Extent[]>;
  /** The tensor read last, and when: while it is being read, its evicted blocks will be read again by the next pass. */
  private active?: Extent;
  private activeAt = 0;

  constructor(
    uri: string,
    private readonly http?: HttpOptions,
  ) {
    this.uri = uri;
    const pin = parsePinnedHubUri(uri);
    if (pin.file === undefined) throw new StorageError(`open ${uri}: names a repository, not a file`);
    this.pin = { ...pin, file: pin.file };
  }

  private hub(): Shared {
    return sharedHubClient(this.http);
  }

  private cached(): ByteSource | undefined {
    if (this.local) return this.local;
    const p = cachedFile(this.hub().settings.cacheDir, this.pin.repo, this.pin.sha, this.pin.file);
    if (p) this.local = new FileByteSource(p);
    return this.local;
  }

  async size(): Promise<number> {
    const local = this.cached();
    if (local) return local.size();
    if (this.knownSize !== undefined) return this.knownSize;
    const { client, settings } = this.hub();
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
    const { settings } = this.hub();
    if (settings.offline) throw offlineMissingError(this.pin, settings.cacheDir);
    const size = await this.size();
    if (offset + length > size) throw truncatedError(this.uri, offset, length, size);
    const ext = await this.extentOf(offset, length);
    if (!ext) {
      copyChunks(await this.fetchRange(offset, length), 0, buf);
      return buf;
    }
    const blockAt = (b: number) => {
      const start = ext.start + b * BLOCK_BYTES;
      return { start, len: Math.min(BLOCK_BYTES, ext.end - start) };
    };
    this.active = ext;
    this.activeAt = performance.now();
    const first = Math.floor((offset - ext.start) / BLOCK_BYTES);
    const last = Math.floor((offset + length - 1 - ext.start) / BLOCK_BYTES);
    const needed = [];
    for (let b = first; b <= last; b++) needed.push({ ...blockAt(b), key: this.blockKey(blockAt(b)), data: this.block(ext, blockAt(b), false)! });
    const lastBlock = Math.floor((ext.end - 1 - ext.start) / BLOCK_BYTES);
    for (let b = last + 1; b <= Math.min(lastBlock, last + AHEAD_BLOCKS); b++) {
      // Read-ahead: its failure surfaces, if at all, on the read that needs the block.
      this.block(ext, blockAt(b), true)?.catch(() => undefined);
    }
    const { blocks } = this.hub();
    await yieldForSockets();
    try {
      for (const blk of needed) copyChunks(await blk.data, offset - blk.start, buf);
    } finally {
      for (const blk of needed) blocks.unpin(blk.key, blk.data);
    }
    return buf;
  }

  /**
   * Starts the blocks holding the range (those inside one tensor), as read-ahead: within the memory
   * budget, taking room only from blocks no job holds (block-pool.ts). Settles once they are asked for.
   */
  willNeed(offset: number, length: number): Promise<void> {
    if (length <= 0 || this.cached() || this.hub().settings.offline) return Promise.resolve();
    const start = async () => {
      await this.size();
      const ext = await this.extentOf(offset, 1);
      if (!ext) return;
      const first = Math.floor((offset - ext.start) / BLOCK_BYTES);
      const last = Math.floor((Math.min(ext.end, offset + length) - 1 - ext.start) / BLOCK_BYTES);
      for (let b = first; b <= last; b++) {
        const s = ext.start + b * BLOCK_BYTES;
        this.block(ext, { start: s, len: Math.min(BLOCK_BYTES, ext.end - s) }, true)?.catch(() => undefined);
      }
    };
    // Only a hint: a failure here surfaces, if at all, on the read that needs the bytes.
    return start().catch(() => undefined);
  }

  /** Releases the blocks that lie wholly inside the range (a job is done with them); their buffers serve the next fetches. */
  dontNeed(offset: number, length: number): void {
    if (length <= 0 || !this.extents) return;
    const release = async () => {
      const ext = await this.extentOf(offset, 1);
      if (!ext) return;
      const end = Math.min(ext.end, offset + length);
      const keys: string[] = [];
      for (let s = ext.start; s < ext.end; s += BLOCK_BYTES) {
        const len = Math.min(BLOCK_BYTES, ext.end - s);
        if (s >= offset && s + len <= end) keys.push(this.blockKey({ start: s, len }));
      }
      this.hub().blocks.release(keys);
    };
    release().catch(() => undefined);
  }

  private blockKey(b: { start: number; len: number }): string {
    return `${this.uri}:${b.start}:${b.len}`;
  }

  /** A block of the tensor `ext`; pinned (until `unpin`) unless read ahead. */
  private block(ext: Extent, b: { start: number; len: number }, ahead: boolean): Promise<Uint8Array[]> | undefined {
    const { blocks, ranges, settings } = this.hub();
    const key = this.blockKey(b);
    // Its tensor is being read: a multi-pass method will read the block again.
    const live = () => this.active === ext && performance.now() - this.activeAt < ACTIVE_MS;
    const onEvict = ranges && !settings.rangeCacheAll ? (data: Uint8Array[]) => live() && ranges.put(key, data) : undefined;
    return blocks.get(key, b.len, (alloc) => this.fetchRange(b.start, b.len, alloc), { ahead, onEvict, pin: !ahead, live });
  }

  /** A range from the worker's range cache, else the network (kept in the range cache with --cache-dir). */
  private async fetchRange(offset: number, length: number, alloc?: BlockAlloc): Promise<Uint8Array[]> {
    const { client, ranges, settings } = this.hub();
    const key = `${this.uri}:${offset}:${length}`;
    const hit = ranges?.take(key, length);
    if (hit) {
      countCacheBytes(length);
      return [hit];
    }
    const chunks = await client.readRange(this.pin.repo, this.pin.sha, this.pin.file, offset, length, alloc);
    if (settings.rangeCacheAll) ranges?.put(key, chunks);
    return chunks;
  }

  /** The tensor whose bytes hold [offset, offset+length), from the file's safetensors header; undefined elsewhere. */
  private async extentOf(offset: number, length: number): Promise<Extent | undefined> {
    if (!this.pin.file.endsWith(".safetensors")) return undefined;
    // A failed header read fails this read (after its retries) and is tried again by the next one.
    const pending = (this.extents ??= tensorExtents(async (o, n) => copyChunks(await this.fetchRange(o, n), 0, new Uint8Array(n)), this.knownSize ?? 0));
    const list = await pending.catch((err: unknown) => {
      if (this.extents === pending) this.extents = undefined;
      throw err;
    });
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].end <= offset) lo = mid + 1;
      else if (list[mid].start > offset) hi = mid - 1;
      else return offset + length <= list[mid].end ? list[mid] : undefined;
    }
    return undefined;
  }

  async close(): Promise<void> {
    await this.local?.close();
  }
}

let lastYield = 0;

/**
 * Lets the thread's event loop run now and then. The merge kernels run on the thread that owns
 * the connections, and a read served from memory resolves in a microtask: a kernel working
 * through blocks already here never gives the loop a turn, so the read-ahead's bytes sit in the
 * kernel's socket buffer (the server stalls on a full window), and the thread's next job, which
 * the pool has already sent, is not taken in to start its fetches (tensor-thread.ts), until a
 * read finally waits on the network. A turn every millisecond keeps both going during compute.
 */
async function yieldForSockets(): Promise<void> {
  const now = performance.now();
  if (now - lastYield < 1) return;
  lastYield = now;
  await new Promise((r) => setImmediate(r));
}

/**
 * Copies bytes of a chunked range into `into`: from byte `skip` of the range (negative: `into`
 * starts before the range, which then lands at `-skip`), as much as both hold. Returns `into`.
 */
export function copyChunks(chunks: readonly Uint8Array[], skip: number, into: Uint8Array): Uint8Array {
  let pos = 0; // range offset of the current chunk
  for (const c of chunks) {
    const end = pos + c.byteLength;
    const from = Math.max(pos, skip);
    const to = Math.min(end, skip + into.byteLength);
    if (from < to) into.set(c.subarray(from - pos, to - pos), from - skip);
    pos = end;
    if (pos >= skip + into.byteLength) break;
  }
  return into;
}
