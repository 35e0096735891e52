/**
 * A small Hugging Face Hub client over undici's `request` and one keep-alive Agent per process or
 * thread (http-agent.ts): the revision API, `resolve` with Range, whole-file downloads. `request`
 * rather than fetch: its Node stream body costs a fraction of the CPU of fetch's web stream per
 * byte, which matters when the merge kernels share the cores. Written here rather than taken from
 * @huggingface/hub because range reads must land in a caller's buffer (the kernels' memory) with
 * per-host byte counts, one retry policy (backoff with jitter, Retry-After), a cap on requests in
 * flight, and redirects followed by hand so that the token goes only to the Hub's own host — the
 * rule huggingface_hub gets from requests (Authorization dropped on a redirect to another host).
 */
import { MergeloomError } from "@mergeloom/proto/errors";
import { CheckpointError, StorageError } from "../../errors/index.js";
import type { Dispatcher } from "undici";
import { storageHttp } from "../http-agent.js";
import { RangeConnections } from "../range-connections.js";
import { RetryAfterError, parseRetryAfter, withHttpRetries, describeFetchError, type RetryPolicy } from "../http-retry.js";
import type { StallWatch } from "../http-stall-watch.js";
import { hubHttpError, HubMissingError, type HubRequestSubject } from "./hub-errors.js";
import { countNetworkBytes } from "./hub-stats.js";
import type { HubSettings } from "./hub-settings.js";
import { RedirectCache } from "./redirect-cache.js";
import { Semaphore } from "./semaphore.js";

/** One answer: status, a header getter, the body (a Node stream), and the URL that gave it (after redirects). */
interface HubResponse {
  status: number;
  header(name: string): string | undefined;
  body: Dispatcher.ResponseData["body"];
  url: string;
}

export interface HubFileInfo {
  /** Path inside the repository. */
  path: string;
  size?: number;
  /** Git blob id (the cache's blob name for small files). */
  blobId?: string;
  /** sha256 of an LFS file (the cache's blob name; verified on download). */
  lfsSha256?: string;
}

export interface HubRevisionInfo {
  repo: string;
  /** Full commit sha the revision points at now. */
  sha: string;
  files: Map<string, HubFileInfo>;
}

/** What a HEAD on `resolve` tells (huggingface_hub's HfFileMetadata). */
export interface HubFileMetadata {
  commit?: string;
  /** Normalized: no `W/`, no quotes. X-Linked-Etag (LFS sha256) when present, else ETag (git blob sha1). */
  etag?: string;
  size?: number;
}

const MAX_REDIRECTS = 5;
const USER_AGENT = "mergeloom/0.1.0";
/** Range size above which a read is split into parallel requests. */
const PART_BYTES = 8 << 20;
const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

export function normalizeEtag(v: string | null | undefined): string | undefined {
  if (!v) return undefined;
  return v.replace(/^W\//, "").replace(/^"|"$/g, "") || undefined;
}

export class HubClient {
  private readonly sem: Semaphore;
  private readonly policy: RetryPolicy;
  private readonly endpointHost: string;
  /** Where `resolve` redirected each file: range reads go straight there until it expires or stops answering. */
  private readonly located = new RedirectCache();
  private readonly infos = new Map<string, Promise<HubRevisionInfo>>();
  /** Keep-alive connections for tensor ranges, read into the caller's buffer. */
  private readonly direct = new RangeConnections();

  constructor(
    readonly settings: HubSettings,
    policy?: Partial<RetryPolicy>,
  ) {
    this.sem = new Semaphore(Math.max(1, settings.concurrency));
    this.policy = { retries: settings.retries, retryDelayMs: settings.retryDelayMs, timeoutMs: settings.timeoutMs, ...policy };
    this.endpointHost = new URL(settings.endpoint).host;
  }

  resolveUrl(repo: string, revision: string, file: string): string {
    return `${this.settings.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split("/").map(encodeURIComponent).join("/")}`;
  }

  /** `GET /api/models/{repo}/revision/{rev}?blobs=true`: the commit sha and the file list with sizes and LFS hashes. */
  revisionInfo(repo: string, revision: string): Promise<HubRevisionInfo> {
    // Only commits are immutable: a branch or tag is asked again each time (it may have moved).
    if (!/^[0-9a-f]{40}$/.test(revision))
      return this.fetchRevisionInfo(repo, revision).then((info) => (this.infos.set(`${repo}@${info.sha}`, Promise.resolve(info)), info));
    const key = `${repo}@${revision}`;
    let p = this.infos.get(key);
    if (!p) {
      p = this.fetchRevisionInfo(repo, revision);
      this.infos.set(key, p);
      p.catch(() => this.infos.delete(key));
    }
    return p;
  }

  private async fetchRevisionInfo(repo: string, revision: string): Promise<HubRevisionInfo> {
    const url = `${this.settings.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
    const s: HubRequestSubject = { repo, revision };
    const body = await this.withRetries(url, async (watch) => {
      const res = await this.send(url, { headers: { accept: "application/json" } }, s, watch);
      try {
        return new Uint8Array(await res.body.arrayBuffer());
      } catch (err) {
        throw new StorageError(`read hub ${repo}@${revision}: ${describeFetchError(err)}`, { cause: err, retryable: true });
      }
    });
    let doc: { sha?: unknown; siblings?: unknown };
    try {
      doc = JSON.parse(new TextDecoder().decode(body)) as typeof doc;
    } catch (err) {
      throw new CheckpointError(
        `hub ${repo}@${revision}`,
        `the revision API answered something that is not JSON (${(err as Error).message}); check HF_ENDPOINT`,
        { cause: err },
      );
    }
    if (typeof doc.sha !== "string" || !/^[0-9a-f]{40}$/.test(doc.sha) || !Array.isArray(doc.siblings)) {
      throw new CheckpointError(`hub ${repo}@${revision}`, "the revision API answered without a commit sha and file list; check HF_ENDPOINT");
    }
    const files = new Map<string, HubFileInfo>();
    for (const sib of doc.siblings as Array<Record<string, unknown>>) {
      if (typeof sib?.rfilename !== "string") continue;
      const lfs = sib.lfs as { sha256?: unknown; size?: unknown } | undefined;
      const info: HubFileInfo = { path: sib.rfilename };
      if (typeof sib.size === "number") info.size = sib.size;
      if (typeof sib.blobId === "string") info.blobId = sib.blobId;
      if (lfs && typeof lfs.sha256 === "string") info.lfsSha256 = lfs.sha256;
      if (lfs && typeof lfs.size === "number") info.size = lfs.size;
      files.set(info.path, info);
    }
    return { repo, sha: doc.sha, files };
  }

  /** HEAD on `resolve` (no redirect to storage followed): commit, etag and size of one file. */
  async fileMetadata(repo: string, revision: string, file: string): Promise<HubFileMetadata> {
    const s: HubRequestSubject = { repo, revision, file };
    const url = this.resolveUrl(repo, revision, file);
    return this.withRetries(url, async (watch) => {
      const res = await this.send(url, { method: "HEAD", headers: { "accept-encoding": "identity" } }, s, watch, { stopAtStorage: true });
      await res.body.dump().catch(() => undefined);
      const size = Number(res.header("x-linked-size") ?? res.header("content-length"));
      return {
        commit: res.header("x-repo-commit"),
        etag: normalizeEtag(res.header("x-linked-etag")) ?? normalizeEtag(res.header("etag")),
        size: Number.isSafeInteger(size) ? size : undefined,
      };
    });
  }

  /**
   * `length` bytes at `offset` of a file pinned to a commit, as the chunks the socket delivered
   * (the caller copies them once, to where they are needed). A large read is split into parts
   * fetched in parallel (bounded by the request cap): one TCP stream rarely fills a fast link,
   * and a failed part is retried alone.
   */
  async readRange(repo: string, sha: string, file: string, offset: number, length: number, alloc?: (n: number) => Uint8Array): Promise<Uint8Array[]> {
    if (length <= PART_BYTES * 1.5) return this.readPart(repo, sha, file, offset, length, alloc);
    const parts: Promise<Uint8Array[]>[] = [];
    for (let p = 0; p < length; p += PART_BYTES) parts.push(this.readPart(repo, sha, file, offset + p, Math.min(PART_BYTES, length - p), alloc));
    return (await Promise.all(parts)).flat();
  }

  /** `alloc` gives the buffer a part is read into (the block pool recycles them); a fresh one by default. */
  private async readPart(repo: string, sha: string, file: string, offset: number, length: number, alloc?: (n: number) => Uint8Array): Promise<Uint8Array[]> {
    const s: HubRequestSubject = { repo, revision: sha, file };
    const key = `${repo}@${sha}/${file}`;
    const last = offset + length - 1;
    const what = `read ${this.resolveUrl(repo, sha, file)} bytes ${offset}-${last}`;
    let dest: Uint8Array | undefined;
    return this.sem.run(() =>
      this.withRetries(
        what,
        async (watch) => {
          dest ??= alloc?.(length) ?? Buffer.allocUnsafeSlow(length);
          if (await this.readPartDirect(key, s, offset, dest, watch)) return [dest];
          const cached = this.located.get(key);
          let res: HubResponse;
          try {
            res = await this.send(cached ?? this.resolveUrl(repo, sha, file), { headers: { range: `bytes=${offset}-${last}` } }, s, watch, {
              onLocation: (u) => this.located.set(key, u),
            });
          } catch (err) {
            // A stored redirect target can expire early or be revoked: forget it and go through `resolve` again.
            if (cached) {
              this.located.delete(key);
              if (err instanceof MergeloomError && !err.retryable) throw new StorageError((err as Error).message, { cause: err, retryable: true });
            }
            throw err;
          }
          if (res.status !== 206) {
            await res.body.dump().catch(() => undefined);
            throw new StorageError(
              `read hub ${repo}@${sha}/${file}: the server answered ${res.status} to a Range request instead of 206; HF_ENDPOINT must support HTTP Range requests`,
            );
          }
          const m = CONTENT_RANGE.exec(res.header("content-range") ?? "");
          if (!m || Number(m[1]) !== offset || Number(m[2]) < last) {
            await res.body.dump().catch(() => undefined);
            throw new CheckpointError(
              `hub ${repo}@${sha}/${file}`,
              `asked for bytes ${offset}-${last} but the server answered Content-Range ${JSON.stringify(res.header("content-range") ?? null)}; the file is shorter than its header says`,
            );
          }
          const chunks = await readBodyChunks(res, length, `read hub ${repo}@${sha}/${file}`, watch);
          const got = chunks.reduce((n, c) => n + c.byteLength, 0);
          if (got !== length) throw new StorageError(`read hub ${repo}@${sha}/${file}: connection closed after ${got} of ${length} bytes`, { retryable: true });
          return chunks;
        },
        length,
      ),
    );
  }

  /**
   * The range read straight into one buffer (range-connections.ts), following redirects as
   * `send` does (token to the endpoint's host only) and failing with the same typed errors.
   * False when the answer is a success this reader does not take (a 200, a chunked or
   * encoded body): the general path then asks again and judges it.
   */
  private async readPartDirect(key: string, s: HubRequestSubject, offset: number, dest: Uint8Array, watch: StallWatch): Promise<boolean> {
    const cached = this.located.get(key);
    let url = cached ?? this.resolveUrl(s.repo, s.revision!, s.file!);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const u = new URL(url);
      const headers: Record<string, string> = { "user-agent": USER_AGENT };
      if (this.settings.token && u.host === this.endpointHost) headers.authorization = `Bearer ${this.settings.token}`;
      let answer;
      try {
        answer = await this.direct.read(url, headers, offset, dest, watch, (n) => countNetworkBytes(u.host, n));
      } catch (err) {
        if (url === cached) this.located.delete(key);
        throw err;
      }
      if (answer.ok) return true;
      const location = answer.header("location");
      if (answer.status >= 300 && answer.status < 400 && location) {
        const next = new URL(location, url).href;
        if (new URL(next).host !== u.host) this.located.set(key, next);
        url = next;
        continue;
      }
      if (answer.status < 300) return false; // a 1xx first (103 Early Hints), a 200, a body this reader does not take
      const err = hubHttpError(s, answer.status, answer.header("x-error-code") ?? null, this.settings.endpoint);
      // A stored redirect target can expire early or be revoked: forget it and go through `resolve` again.
      if (url === cached) {
        this.located.delete(key);
        throw new StorageError(err.message, { cause: err, retryable: true });
      }
      if (err.retryable) throw new RetryAfterError(err.message, parseRetryAfter(answer.header("retry-after")));
      throw err;
    }
    throw new StorageError(`read hub ${s.repo}@${s.revision}: more than ${MAX_REDIRECTS} redirects`);
  }

  /** A small file (index, config, tokenizer) whole; undefined when it does not exist. */
  async getSmallFile(repo: string, sha: string, file: string, maxBytes = 64 << 20): Promise<Uint8Array | undefined> {
    const s: HubRequestSubject = { repo, revision: sha, file };
    const url = this.resolveUrl(repo, sha, file);
    return this.withRetries(url, async (watch) => {
      let res: HubResponse;
      try {
        res = await this.send(url, {}, s, watch);
      } catch (err) {
        if (err instanceof HubMissingError && err.missing === "file") return undefined;
        throw err;
      }
      const declared = Number(res.header("content-length") ?? "0");
      if (declared > maxBytes) {
        await res.body.dump().catch(() => undefined);
        throw new CheckpointError(`hub ${repo}@${sha}/${file}`, `file is ${declared} bytes, over the ${maxBytes}-byte limit for metadata files`);
      }
      const buf = new Uint8Array(declared || maxBytes);
      const got = await readBodyInto(res, buf, `read hub ${repo}@${sha}/${file}`, watch, !declared);
      if (declared && got !== declared)
        throw new StorageError(`read hub ${repo}@${sha}/${file}: connection closed after ${got} of ${declared} bytes`, { retryable: true });
      return buf.slice(0, got);
    });
  }

  /**
   * Streams a whole file (from `from` on, to resume) to `sink`, in order; retries continue where
   * the last attempt stopped. Returns the bytes written.
   */
  async download(repo: string, sha: string, file: string, from: number, sink: (chunk: Uint8Array) => Promise<void>): Promise<number> {
    const s: HubRequestSubject = { repo, revision: sha, file };
    let pos = from;
    const url = this.resolveUrl(repo, sha, file);
    // The stall watch times progress, not the whole transfer: a large file may take many windows.
    await this.withRetries(url, async (watch) => {
      const headers: Record<string, string> = pos > 0 ? { range: `bytes=${pos}-` } : {};
      const res = await this.send(url, { headers }, s, watch);
      if (pos > 0 && res.status !== 206) {
        await res.body.dump().catch(() => undefined);
        throw new StorageError(
          `download hub ${repo}@${sha}/${file}: the server answered ${res.status} to a resume request instead of 206; HF_ENDPOINT must support HTTP Range requests`,
        );
      }
      const host = new URL(res.url).host;
      try {
        for await (const chunk of res.body) {
          const value = chunk as Buffer;
          countNetworkBytes(host, value.byteLength);
          watch.progress(value.byteLength);
          await sink(value);
          pos += value.byteLength;
        }
      } catch (err) {
        if (err instanceof MergeloomError) throw err;
        throw (
          watch.stalled ??
          new StorageError(`download hub ${repo}@${sha}/${file}: connection failed at byte ${pos} (${describeFetchError(err)})`, {
            cause: err,
            retryable: true,
          })
        );
      }
    });
    return pos - from;
  }

  /** The shared retry policy; `what` (a URL, with the byte range for range reads) names the request when retries run out. */
  private withRetries<T>(what: string, fn: (watch: StallWatch) => Promise<T>, expected?: number): Promise<T> {
    const target = /^read /.test(what) ? what : `read ${what}`;
    return withHttpRetries(target, this.policy, fn, expected);
  }

  /**
   * One request with redirects followed by hand. The token goes to the endpoint's host only;
   * any non-success status becomes a typed error (retryable for 408/429/5xx).
   */
  private async send(
    url: string,
    init: { method?: string; headers?: Record<string, string> },
    s: HubRequestSubject,
    watch: StallWatch,
    opts: { stopAtStorage?: boolean; onLocation?: (url: string) => void } = {},
  ): Promise<HubResponse> {
    let current = url;
    for (let hop = 0; ; hop++) {
      const u = new URL(current);
      const headers: Record<string, string> = { "user-agent": USER_AGENT, ...init.headers };
      if (this.settings.token && u.host === this.endpointHost) headers.authorization = `Bearer ${this.settings.token}`;
      const http = await storageHttp();
      const raw = await http.request(current, {
        method: (init.method ?? "GET") as Dispatcher.HttpMethod,
        headers,
        signal: watch.signal,
        dispatcher: http.agent,
      });
      watch.headers();
      const header = (name: string): string | undefined => {
        const v = raw.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      const res: HubResponse = { status: raw.statusCode, header, body: raw.body, url: current };
      const location = header("location");
      if (res.status >= 300 && res.status < 400 && location) {
        if (hop >= MAX_REDIRECTS) {
          await res.body.dump().catch(() => undefined);
          throw new StorageError(`read hub ${s.repo}@${s.revision}: more than ${MAX_REDIRECTS} redirects`);
        }
        const next = new URL(location, current).href;
        // HEAD stops at the storage host: the metadata headers are on the Hub's answer.
        if (opts.stopAtStorage && new URL(next).host !== u.host) return res;
        await res.body.dump().catch(() => undefined);
        if (new URL(next).host !== u.host) opts.onLocation?.(next);
        current = next;
        continue;
      }
      if (res.status >= 200 && res.status < 300) return res;
      await res.body.dump().catch(() => undefined);
      const err = hubHttpError(s, res.status, header("x-error-code") ?? null, this.settings.endpoint);
      if (err.retryable) throw new RetryAfterError(err.message, parseRetryAfter(header("retry-after")));
      throw err;
    }
  }
}

/** A body as the chunks received (no copy), counting network bytes per host; at most `max` bytes. */
async function readBodyChunks(res: HubResponse, max: number, what: string, watch: StallWatch): Promise<Uint8Array[]> {
  const host = new URL(res.url).host;
  const chunks: Uint8Array[] = [];
  let got = 0;
  try {
    for await (const chunk of res.body) {
      const value = chunk as Buffer;
      if (got + value.byteLength > max) {
        res.body.destroy();
        throw new StorageError(`${what}: the server sent more than the ${max} bytes requested`);
      }
      chunks.push(value);
      got += value.byteLength;
      watch.progress(value.byteLength);
      countNetworkBytes(host, value.byteLength);
    }
    return chunks;
  } catch (err) {
    if (err instanceof MergeloomError) throw err;
    throw (
      watch.stalled ?? new StorageError(`${what}: connection failed after ${got} of ${max} bytes (${describeFetchError(err)})`, { cause: err, retryable: true })
    );
  }
}

/** Streams a body into `buf`, counting network bytes per host; returns the bytes received. */
async function readBodyInto(res: HubResponse, buf: Uint8Array, what: string, watch: StallWatch, allowShort = false): Promise<number> {
  const host = new URL(res.url).host;
  let got = 0;
  try {
    for await (const chunk of res.body) {
      const value = chunk as Buffer;
      if (got + value.byteLength > buf.byteLength) {
        res.body.destroy();
        throw new StorageError(`${what}: the server sent more than the ${buf.byteLength} bytes ${allowShort ? "allowed" : "requested"}`);
      }
      buf.set(value, got);
      got += value.byteLength;
      watch.progress(value.byteLength);
      countNetworkBytes(host, value.byteLength);
    }
    return got;
  } catch (err) {
    if (err instanceof MergeloomError) throw err;
    throw (
      watch.stalled ??
      new StorageError(`${what}: connection failed after ${got} of ${buf.byteLength} bytes (${describeFetchError(err)})`, { cause: err, retryable: true })
    );
  }
}
