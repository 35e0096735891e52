/**
 * ByteSource over HTTP(S) Range requests. Tensor ranges are read straight into the caller's
 * buffer over kept-alive connections (range-connections.ts); the size probe, redirects and any
 * answer that reader hands back go through global fetch. A server that ignores Range and sends the
 * whole file (200) is an error rather than a silent multi-gigabyte download. Transient failures
 * (network errors, 408/429/5xx, bodies cut short, stalls — see http-stall-watch.ts) are retried a
 * bounded number of times with exponential backoff and full jitter, and surface as retryable
 * StorageErrors naming the URL and byte range when retries run out.
 */
import { MergeloomError } from "@mergeloom/proto/errors";
import { CheckpointError, StorageError } from "../errors/index.js";
import { checkReadArgs, truncatedError, type ByteSource } from "./byte-source.js";
import type { StallWatch } from "./http-stall-watch.js";
import { DEFAULT_HTTP_RETRIES, DEFAULT_HTTP_TIMEOUT_MS, withHttpRetries, type RetryPolicy } from "./http-retry.js";
import { RangeConnections } from "./range-connections.js";
import { STATUS_CODES } from "node:http";

export { DEFAULT_HTTP_RETRIES, DEFAULT_HTTP_TIMEOUT_MS };

export interface HttpOptions {
  /** Extra attempts after the first for transient failures (default 5; --http-retries). */
  retries?: number;
  /** Backoff base: retry i waits a uniformly random time in [0, base·2^i], capped at 30 s (default 200 ms). */
  retryDelayMs?: number;
  /**
   * Read timeout (default 30 s; --http-timeout): a request fails as stalled when a window this long
   * brings neither its response headers nor 64 KiB (or the rest of its range).
   */
  timeoutMs?: number;
  headers?: Record<string, string>;
}

const MAX_BACKOFF_MS = 30_000;

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;
const UNSATISFIED_RANGE = /^bytes \*\/(\d+)$/;

export class HttpByteSource implements ByteSource {
  readonly uri: string;
  private readonly opts: HttpOptions;
  private knownSize?: number;
  /** Whether ranges go through the direct reader (until the server answers something only fetch handles). */
  private direct: boolean;

  constructor(url: string, opts: HttpOptions = {}) {
    this.uri = url;
    this.opts = opts;
    this.direct = /^https?:/i.test(url);
  }

  /** Probes `bytes=0-0` and reads the total from Content-Range; this also proves Range support. */
  async size(): Promise<number> {
    if (this.knownSize !== undefined) return this.knownSize;
    const size = await withRetries(this.uri, "bytes 0-0", 1, this.opts, async (watch) => {
      const signal = watch.signal;
      const res = await fetch(this.uri, { headers: { ...this.opts.headers, Range: "bytes=0-0" }, signal });
      watch.headers();
      await res.body?.cancel().catch(() => undefined);
      if (res.status === 416) {
        // An empty file cannot satisfy any range; the total is in `bytes */N` or, failing that, HEAD.
        const m = UNSATISFIED_RANGE.exec(res.headers.get("content-range") ?? "");
        return m ? Number(m[1]) : this.headSize(signal);
      }
      checkStatus(this.uri, res);
      if (res.status !== 206) throw rangeIgnored(this.uri, res.status);
      const m = CONTENT_RANGE.exec(res.headers.get("content-range") ?? "");
      if (m && m[3] !== "*") return Number(m[3]);
      return this.headSize(signal);
    });
    this.knownSize = size;
    return size;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    checkReadArgs(this.uri, offset, length, into);
    const buf = into ? into.subarray(0, length) : new Uint8Array(length);
    if (length === 0) return buf;
    if (this.knownSize !== undefined && offset + length > this.knownSize) throw truncatedError(this.uri, offset, length, this.knownSize);
    const last = offset + length - 1;
    await withRetries(this.uri, `bytes ${offset}-${last}`, length, this.opts, async (watch) => {
      if (this.direct) {
        const a = await directConnections().read(this.uri, { ...this.opts.headers }, offset, buf, watch);
        if (a.ok) return;
        // The same judgement as below for statuses that end the read; anything else (a redirect, a
        // clamped or encoded body) goes to fetch from now on, for this source.
        if (a.status === 416) {
          const m = UNSATISFIED_RANGE.exec(a.header("content-range") ?? "");
          throw truncatedError(this.uri, offset, length, m ? Number(m[1]) : undefined);
        }
        if (a.status >= 400) throw statusError(this.uri, a.status, STATUS_CODES[a.status] ?? "");
        if (a.status === 200) throw rangeIgnored(this.uri, a.status);
        this.direct = false;
      }
      const res = await fetch(this.uri, { headers: { ...this.opts.headers, Range: `bytes=${offset}-${last}` }, signal: watch.signal });
      watch.headers();
      if (res.status === 416) {
        await res.body?.cancel().catch(() => undefined);
        const m = UNSATISFIED_RANGE.exec(res.headers.get("content-range") ?? "");
        throw truncatedError(this.uri, offset, length, m ? Number(m[1]) : undefined);
      }
      checkStatus(this.uri, res);
      if (res.status !== 206) {
        await res.body?.cancel().catch(() => undefined);
        throw rangeIgnored(this.uri, res.status);
      }
      const m = CONTENT_RANGE.exec(res.headers.get("content-range") ?? "");
      if (!m || Number(m[1]) !== offset) {
        await res.body?.cancel().catch(() => undefined);
        throw new StorageError(
          `read ${this.uri}: asked for bytes ${offset}-${last} but the server answered Content-Range ${JSON.stringify(res.headers.get("content-range"))}`,
        );
      }
      const end = Number(m[2]);
      if (m[3] !== "*") this.knownSize = Number(m[3]);
      if (end < last) {
        // The server clamps ranges to the file: a shorter range means the file ends early.
        await res.body?.cancel().catch(() => undefined);
        throw truncatedError(this.uri, offset, length, this.knownSize);
      }
      const got = await readBody(this.uri, res, buf, watch);
      if (got !== length) {
        throw new StorageError(`read ${this.uri}: connection closed after ${got} of ${length} bytes`, { retryable: true });
      }
    });
    return buf;
  }

  async close(): Promise<void> {
    // fetch keeps no per-source state worth releasing; the agent pools connections.
  }

  private async headSize(signal: AbortSignal): Promise<number> {
    const res = await fetch(this.uri, { method: "HEAD", headers: this.opts.headers, signal });
    checkStatus(this.uri, res);
    const len = Number(res.headers.get("content-length"));
    if (!res.headers.has("content-length") || !Number.isSafeInteger(len) || len < 0) {
      throw new StorageError(
        `stat ${this.uri}: the server reports no Content-Range total and no Content-Length; serve the file from a server that supports Range requests`,
      );
    }
    return len;
  }
}

/** GETs a small whole file (an index or config); undefined when the server answers 404. */
export async function fetchSmallFile(url: string, opts: HttpOptions = {}, maxBytes = 64 << 20): Promise<Uint8Array | undefined> {
  return withRetries(url, "whole file", undefined, opts, async (watch) => {
    const res = await fetch(url, { headers: opts.headers, signal: watch.signal });
    watch.headers();
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      return undefined;
    }
    checkStatus(url, res);
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new CheckpointError(url, `file is ${declared} bytes, over the ${maxBytes}-byte limit for metadata files`);
    }
    return readWhole(url, res, maxBytes, watch);
  });
}

/** Reads a whole (small) body, reporting progress to the stall watch. */
async function readWhole(url: string, res: Response, maxBytes: number, watch: StallWatch): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let got = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      got += value.byteLength;
      watch.progress(value.byteLength);
      if (got > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new CheckpointError(url, `file is over the ${maxBytes}-byte limit for metadata files`);
      }
      parts.push(value);
    }
  } catch (err) {
    if (err instanceof MergeloomError) throw err;
    throw watch.stalled ?? new StorageError(`read ${url}: connection failed after ${got} bytes (${(err as Error).message})`, { cause: err, retryable: true });
  }
  const out = new Uint8Array(got);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function checkStatus(url: string, res: Response): void {
  if (res.ok) return;
  throw statusError(url, res.status, res.statusText);
}

function statusError(url: string, status: number, statusText: string): MergeloomError {
  if (status === 404 || status === 410) {
    return new CheckpointError(url, `the server answered ${status}: the file does not exist; check the URL`, { code: "CHECKPOINT_MISSING" });
  }
  const transient = status === 408 || status === 429 || status >= 500;
  return new StorageError(`read ${url}: the server answered ${status} ${statusText}`, { retryable: transient });
}

let connections: RangeConnections | undefined;
/** One pool of range connections per process (or merge thread). */
function directConnections(): RangeConnections {
  return (connections ??= new RangeConnections());
}

function rangeIgnored(url: string, status: number): StorageError {
  return new StorageError(
    `read ${url}: the server answered ${status} to a Range request instead of 206 Partial Content; serve the checkpoint from a server that supports HTTP Range requests`,
  );
}

/** Streams the body into `buf`; returns the number of bytes received, failing if there are more. */
async function readBody(url: string, res: Response, buf: Uint8Array, watch: StallWatch): Promise<number> {
  if (!res.body) return 0;
  const reader = res.body.getReader();
  let got = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return got;
      if (got + value.byteLength > buf.byteLength) {
        await reader.cancel().catch(() => undefined);
        throw new StorageError(`read ${url}: the server sent more than the ${buf.byteLength} bytes requested`);
      }
      buf.set(value, got);
      got += value.byteLength;
      watch.progress(value.byteLength);
    }
  } catch (err) {
    if (err instanceof MergeloomError) throw err;
    if (watch.stalled) throw watch.stalled;
    throw new StorageError(`read ${url}: connection failed after ${got} of ${buf.byteLength} bytes (${(err as Error).message})`, {
      cause: err,
      retryable: true,
    });
  }
}

/**
 * Delay before retry `i` (0-based): uniform in [0, min(30 s, base·2^i)] — "full jitter", so many
 * workers retrying one server spread out instead of arriving in waves.
 */
export function backoffDelayMs(i: number, base: number, random: () => number = Math.random): number {
  return random() * Math.min(MAX_BACKOFF_MS, base * 2 ** i);
}

/** The shared retry policy (http-retry.ts) with these options; errors name the URL and the byte range. */
function withRetries<T>(url: string, range: string, expected: number | undefined, opts: HttpOptions, attempt: (watch: StallWatch) => Promise<T>): Promise<T> {
  return withHttpRetries(`read ${url} ${range}`, retryPolicyOf(opts), attempt, expected);
}

export function retryPolicyOf(opts: HttpOptions): RetryPolicy {
  return {
    retries: opts.retries ?? DEFAULT_HTTP_RETRIES,
    retryDelayMs: opts.retryDelayMs ?? 200,
    timeoutMs: opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
    maxDelayMs: MAX_BACKOFF_MS,
  };
}
