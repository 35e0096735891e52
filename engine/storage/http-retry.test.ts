import { test } from "node:test";
import assert from "node:assert/strict";
import { StorageError } from "../errors/index.js";
import { backoffDelay, parseRetryAfter, RetryAfterError, withHttpRetries } from "./http-retry.js";

test("backoff is exponential with full jitter, capped", () => {
  const p = { retryDelayMs: 100, maxDelayMs: 1000 };
  assert.equal(
    backoffDelay(p, 0, () => 0.999999),
    99,
  );
  assert.equal(
    backoffDelay(p, 3, () => 0.5),
    400,
  );
  assert.equal(
    backoffDelay(p, 10, () => 0.999999),
    999,
  );
  assert.equal(
    backoffDelay(p, 2, () => 0),
    0,
  );
});

test("Retry-After is read as seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
});

test("retryable failures are retried (honouring Retry-After), others fail at once, and giving up says how often it tried", async () => {
  let calls = 0;
  const delays: number[] = [];
  const v = await withHttpRetries("read x", { retries: 3, retryDelayMs: 1, timeoutMs: 1000, onRetry: (_e, _i, d) => delays.push(d) }, async () => {
    if (++calls === 1) throw new RetryAfterError("read x: 429", 7);
    if (calls === 2) throw new TypeError("fetch failed");
    return 42;
  });
  assert.equal(v, 42);
  assert.equal(delays[0], 7);
  calls = 0;
  await assert.rejects(
    withHttpRetries("read x", { retries: 3, retryDelayMs: 1, timeoutMs: 1000 }, async () => (calls++, Promise.reject(new StorageError("read x: 404")))),
    /404/,
  );
  assert.equal(calls, 1);
  await assert.rejects(
    withHttpRetries("read x", { retries: 2, retryDelayMs: 1, timeoutMs: 1000 }, async () =>
      Promise.reject(new StorageError("read x: 503", { retryable: true })),
    ),
    /^StorageError: read x: failed after 3 attempts \(--http-retries 2\): 503$/,
  );
});
