/** Transport failures. Connection-level ones are retryable; a KV conflict tells the caller to re-read. */
import { MergeloomError } from "@mergeloom/proto/errors";

export class TransportError extends MergeloomError {
  constructor(message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super("TRANSPORT_FAILED", message, { retryable: opts.retryable ?? true, cause: opts.cause });
  }
}

/** A compare-and-set write (`create` / `update`) lost: re-read the key and try again. */
export class KvConflictError extends TransportError {
  readonly bucket: string;
  readonly key: string;
  constructor(bucket: string, key: string, defect: string, opts: { cause?: unknown } = {}) {
    super(`write kv ${bucket}/${key}: ${defect}; re-read the key and retry`, { ...opts, retryable: true });
    this.bucket = bucket;
    this.key = key;
  }
}

const KEY = /^[-/_=.A-Za-z0-9]+$/;
const NAME = /^[A-Za-z0-9_-]+$/;

/** Same rules as NATS KV, so an embedded run rejects what a distributed one would. */
export function checkKvKey(bucket: string, key: string): void {
  if (!KEY.test(key) || key.startsWith(".") || key.endsWith(".")) {
    throw new TransportError(`write kv ${bucket}/${key}: invalid key; keys use letters, digits and - / _ = . (not at the ends)`, { retryable: false });
  }
}

export function checkBucketName(bucket: string): void {
  if (!NAME.test(bucket)) {
    throw new TransportError(`open bucket '${bucket}': invalid name; use letters, digits, '_' and '-'`, { retryable: false });
  }
}
