/**
 * One retry policy for HTTP storage: exponential backoff with full jitter (so a pool of workers
 * hitting a 429 does not come back in lockstep), `Retry-After` honoured when the server sends
 * one, and only retryable failures retried (MergeloomError.retryable; anything else thrown —
 * fetch's TypeError on a reset, a timeout's DOMException — counts as transient).
 */
import { MergeloomError } from "@mergeloom/proto";
import { StorageError } from "../errors/index.js";

export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  /** Upper bound of the first backoff; doubled per attempt. */
  retryDelayMs: number;
  /** Per-attempt timeout. */
  timeoutMs: number;
  /** Cap on one backoff (default 30 s). */
  maxDelayMs?: number;
  /** Called before each retry (metrics, tests). */
  onRetry?: (err: MergeloomError, attempt: number, delayMs: number) => void;
}

/** A retryable failure that carries the server's Retry-After (seconds), when it sent one. */
export class RetryAfterError extends StorageError {
  constructor(message: string, readonly retryAfterMs: number | undefined) {
    super(message, { retryable: true });
  }
}

/** `Retry-After` as milliseconds (delta-seconds or an HTTP date); undefined when absent or bad. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

export function backoffDelay(policy: Pick<RetryPolicy, "retryDelayMs" | "maxDelayMs">, attempt: number, random = Math.random): number {
  const cap = Math.min(policy.maxDelayMs ?? 30_000, policy.retryDelayMs * 2 ** attempt);
  return Math.floor(random() * cap);
}

export async function withHttpRetries<T>(what: string, policy: RetryPolicy, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    let err: MergeloomError;
    try {
      return await attempt(AbortSignal.timeout(policy.timeoutMs));
    } catch (e) {
      err = e instanceof MergeloomError ? e : new StorageError(`${what}: ${describeFetchError(e)}`, { cause: e, retryable: true });
    }
    if (!err.retryable) throw err;
    if (i >= policy.retries) {
      throw new StorageError(`${err.message.startsWith(what) ? err.message : `${what}: ${err.message}`} (gave up after ${i + 1} attempts)`, { cause: err, retryable: true });
    }
    const hinted = err instanceof RetryAfterError ? err.retryAfterMs : undefined;
    const delay = hinted !== undefined ? Math.min(hinted, policy.maxDelayMs ?? 30_000) : backoffDelay(policy, i);
    policy.onRetry?.(err, i + 1, delay);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** fetch wraps the socket error in `cause`; both parts say what happened. */
export function describeFetchError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
}
