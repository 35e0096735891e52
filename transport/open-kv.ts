/** Opens a bucket from its proto descriptor, so both sides open it with the same kind and options. */
import type { KvOptions } from "@mergeloom/proto/buckets";
import type { MessageKind, MessageMap } from "@mergeloom/proto/schemas";
import type { KvBucket, Transport } from "./transport.js";

/** `overrides` changes only what a deployment may tune (e.g. the worker registry's TTL). */
export function openKv<K extends MessageKind>(
  t: Transport,
  bucket: { readonly name: string; readonly kind: K; readonly options: KvOptions },
  overrides: KvOptions = {},
): Promise<KvBucket<MessageMap[K]>> {
  return t.kv(bucket.name, bucket.kind, { ...bucket.options, ...overrides });
}
