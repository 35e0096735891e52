/**
 * The one retry policy for HTTP storage (plain http(s) inputs and the Hub client alike):
 * exponential backoff with full jitter (so a pool of workers hitting a 429 does not come back in
 * lockstep), `Retry-After` honoured when the server sends one, a stall watch per attempt
 * (--http-timeout is a minimum rate, not a deadline), and only retryable failures retried
 * (MergeloomError.retryable; anything else thrown — fetch's TypeError on a reset, undici's socket
 * errors — counts as transient). Giving up is one line: what was read, how often it was tried
 * (with the flag that sets it), and the last failure.
 */
import { MergeloomError } from "@mergeloom/proto/errors";
import { StorageError } from "../errors/index.js";
import { StallWatch } from "./http-stall-watch.js";

export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;
export const DEFAULT_HTTP_RETRIES = 5;

export interface RetryPolicy {
  /** Extra attempts after the first (--http-retries). */
  retries: number;
  /** Upper bound of the first backoff; doubled per attempt. */
  retryDelayMs: number;
  /** Stall window of one attempt (--http-timeout): headers or 64 KiB (or the rest) must arrive in each. */
  timeoutMs: number;
  /** Cap on one backoff (default 30 s). */
  maxDelayMs?: number;
  /** Called before each retry (metrics, tests). */
  onRetry?: (err: MergeloomError, attempt: number, delayMs: number) => void;
}

/** A retryable failure that carries the server's Retry-After (seconds), when it sent one. */
export class RetryAfterError extends StorageError {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message, { retryable: true });
  }
}

/** `Retry-After` as milliseconds (delta-seconds or an HTTP date); undefined when absent or bad. */
export function parseRetryAfter(v: string | null | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

export function backoffDelay(policy: Pick<RetryPolicy, "retryDelayMs" | "maxDelayMs">, attempt: number, random = Math.random): number {
  const cap = Math.min(policy.maxDelayMs ?? 30_000, policy.retryDelayMs * 2 ** attempt);
  return Math.floor(random() * cap);
}

/**
 * Runs `attempt` with a fresh stall watch per try (its `signal` aborts the request when it stalls;
 * call `headers()` when the response arrives and `progress(n)` per body chunk). `expected` is the
 * body length when known (the stall rule then asks for no more than the rest).
 */
export async function withHttpRetries<T>(what: string, policy: RetryPolicy, attempt: (watch: StallWatch) => Promise<T>, expected?: number): Promise<T> {
  const retries = Math.max(0, policy.retries);
  for (let i = 0; ; i++) {
    let err: MergeloomError;
    const watch = new StallWatch(what, policy.timeoutMs, expected);
    try {
      return await attempt(watch);
    } catch (e) {
      err = watch.stalled ?? (e instanceof MergeloomError ? e : new StorageError(`${what}: ${describeFetchError(e)}`, { cause: e, retryable: true }));
    } finally {
      watch.stop();
    }
    if (!err.retryable) throw err;
    if (i >= retries) {
      const last = err.message.startsWith(`${what}: `) ? err.message.slice(what.length + 2) : err.message;
      throw new StorageError(`${what}: failed after ${i + 1} attempts (--http-retries ${retries}): ${last}`, { cause: err, retryable: true });
    }
    const hinted = err instanceof RetryAfterError ? err.retryAfterMs : undefined;
    const delay = hinted !== undefined ? Math.min(hinted, policy.maxDelayMs ?? 30_000) : backoffDelay(policy, i);
    policy.onRetry?.(err, i + 1, delay);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** fetch and undici wrap the socket error in `cause`; both parts say what happened. */
export function describeFetchError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
}
