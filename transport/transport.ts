/**
 * The transport contract shared by the coordinator and workers, with two implementations:
 * MemoryTransport (embedded runs, unit tests) and NatsTransport (JetStream). One conformance suite
 * (test/transport/conformance.ts) holds both to the same semantics.
 *
 * - Tasks: `publishTask` appends to a work queue; `consume` hands each task to exactly one handler
 *   at a time. Handler resolves → ack. Handler throws an error with `isPermanent(err)` → term (never
 *   redelivered). Any other error → nak, redelivered after `backoffMs[attempt-1]` (last value
 *   repeats). A handler that neither finishes nor heartbeats within `ackWaitMs` loses the task:
 *   its `signal` aborts and the task is redelivered. After `maxDeliver` attempts the task is
 *   dropped (terminated) — the handler sees attempts 1..maxDeliver.
 * - Results/events: `publish` appends to a retained log; `subscribe` with `deliver: "all"` replays
 *   it from the start, so a restarted coordinator recovers results published while it was down.
 * - KV: revisioned values with compare-and-set (`create`, `update`) and an optional bucket TTL.
 * - Objects: named byte blobs streamed in and out (task outputs without a shared file system).
 *
 * Every body goes through the codec (proto/codec.ts) in both implementations, so an embedded run
 * catches the same size and schema violations as a distributed one.
 */
import type { AnyMessage, MessageKind, MessageMap } from "@mergeloom/proto/schemas";
import type { WireError } from "@mergeloom/proto/records";
import type { KvOptions } from "@mergeloom/proto/buckets";

/** Resolve → ack. Permanent error → term. Other errors → nak with backoff. */
export type Handler<T> = (d: Delivery<T>) => Promise<void>;

export interface Delivery<T> {
  body: T;
  /** Message headers (trace context, job/task ids). */
  headers: Record<string, string>;
  /** 1 on first delivery, incremented on every redelivery. */
  attempt: number;
  /** The consumer's max deliveries: `attempt === maxDeliver` is the last try. */
  maxDeliver: number;
  subject: string;
  /** Aborts when this delivery's lease lapsed (no heartbeat within ackWaitMs) or the consumer stopped with `abort`. */
  signal: AbortSignal;
  /** Extends the ack deadline by another ackWaitMs; call it from long tasks. */
  heartbeat(): void;
}

export interface AbandonedTask {
  headers: Record<string, string>;
  /** Deliveries it had (the consumer's max deliver). */
  deliveries: number;
  discard(): Promise<void>;
}

export interface ConsumeOptions {
  /** Handlers running at once in this consumer (default 1). */
  concurrency?: number;
  /** Time a handler has to finish or heartbeat before the task is redelivered (default 30 000). */
  ackWaitMs?: number;
  /** Deliveries before the task is given up (default 5). */
  maxDeliver?: number;
  /** Delay before redelivery after a retryable failure, indexed by attempt-1; the last repeats (default [1000]). */
  backoffMs?: number[];
  /** Durable consumer name shared by every process competing for the queue (default derived from the subject). */
  durable?: string;
  /**
   * Called when a message is refused before the handler runs (oversized, malformed, another
   * protocol version): it is terminated, and this lets the consumer report why, with the decoder's
   * error code (PROTOCOL_MISMATCH, MESSAGE_INVALID) as it crosses the wire.
   */
  onRejected?: (error: WireError, headers: Record<string, string>, subject: string) => void;
}

/** Options with every default applied. */
export type ResolvedConsumeOptions = Required<Omit<ConsumeOptions, "onRejected">> & Pick<ConsumeOptions, "onRejected">;

export function resolveConsumeOptions(subject: string, o: ConsumeOptions = {}): ResolvedConsumeOptions {
  return {
    concurrency: Math.max(1, o.concurrency ?? 1),
    ackWaitMs: o.ackWaitMs ?? 30_000,
    maxDeliver: Math.max(1, o.maxDeliver ?? 5),
    backoffMs: o.backoffMs?.length ? o.backoffMs : [1000],
    durable: o.durable ?? subject.replace(/[^A-Za-z0-9_-]/g, "_"),
    onRejected: o.onRejected,
  };
}

/** Redelivery delay after attempt `attempt` failed. */
export function backoffFor(opts: ResolvedConsumeOptions, attempt: number): number {
  return opts.backoffMs[Math.min(attempt - 1, opts.backoffMs.length - 1)] ?? 0;
}

export interface Stoppable {
  /** Stops receiving and waits for in-flight handlers; with `abort`, aborts their signals first. */
  stop(opts?: { abort?: boolean }): Promise<void>;
}

/** A message from the results/events log. */
export interface Received {
  subject: string;
  message: AnyMessage;
  headers: Record<string, string>;
  /** Position in the log (increasing); a consumer may dedupe or resume with it. */
  seq: number;
}

export interface SubscribeOptions {
  /** "all" replays the retained log first (recovery); "new" (default) only what arrives from now. */
  deliver?: "all" | "new";
  /** Called when a message fails to decode or the handler throws; the subscription continues. */
  onError?: (err: unknown) => void;
}

export type { KvOptions };

export interface KvEntry<T> {
  key: string;
  value: T;
  revision: number;
  /** Epoch ms of the write that produced this revision. */
  created: number;
}

export interface KvChange<T> {
  key: string;
  /** null for a delete. */
  value: T | null;
  op: "put" | "delete";
  revision: number;
}

export interface KvWatchOptions {
  key?: string;
  updatesOnly?: boolean;
  /** An entry whose value does not decode (a ProtocolError naming bucket and key). */
  onError?: (err: unknown, key: string) => void;
}

export interface KvBucket<T> {
  readonly name: string;
  /** The current value, or null when absent, deleted or expired; a value that does not decode throws a ProtocolError naming bucket and key. */
  get(key: string): Promise<KvEntry<T> | null>;
  /** Unconditional write; returns the new revision. */
  put(key: string, value: T): Promise<number>;
  /** Writes only when the key is absent (or deleted); else KvConflictError. */
  create(key: string, value: T): Promise<number>;
  /** Writes only when the key's current revision is `revision`; else KvConflictError. */
  update(key: string, value: T, revision: number): Promise<number>;
  delete(key: string): Promise<void>;
  /** Keys with a live value. */
  keys(): Promise<string[]>;
  /**
   * Calls `fn` with the current values (unless `updatesOnly`), then with each change. A value that
   * does not decode (written by something other than mergeloom) goes to `onError` with its key,
   * and the watch goes on; without `onError` it is skipped.
   */
  watch(fn: (change: KvChange<T>) => void, opts?: KvWatchOptions): Promise<Stoppable>;
}

export interface ObjectInfo {
  name: string;
  size: number;
}

export interface ObjectBucket {
  readonly name: string;
  put(name: string, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<ObjectInfo>;
  /** The object's bytes as a stream of chunks, or null when absent. */
  get(name: string): Promise<AsyncIterable<Uint8Array> | null>;
  /** Convenience: the whole object in one buffer, or null. */
  getBytes(name: string): Promise<Uint8Array | null>;
  info(name: string): Promise<ObjectInfo | null>;
  delete(name: string): Promise<void>;
}

export interface Transport {
  /** Appends a task to the work queue on `subject` (a `mergeloom.v1.task.*` subject). */
  publishTask<K extends MessageKind>(subject: string, kind: K, body: MessageMap[K], headers?: Record<string, string>): Promise<void>;
  /** Competes for tasks on `subject`; other kinds than `kind` are terminated as malformed. */
  consume<K extends MessageKind>(subject: string, kind: K, handler: Handler<MessageMap[K]>, opts?: ConsumeOptions): Promise<Stoppable>;
  /**
   * Reports the tasks on `subject` that the work queue gave up on: maxDeliver deliveries went by
   * and no handler acked, nacked or terminated any of them (every holder crashed, was killed or
   * let its lease lapse), so no consumer will ever report them. `discard` removes the task from
   * the queue; call it from the watcher that owns the task (several may watch one subject).
   */
  watchAbandoned(subject: string, onAbandoned: (a: AbandonedTask) => void, opts?: Pick<ConsumeOptions, "durable">): Promise<Stoppable>;
  /** Appends to the retained results/events log (`mergeloom.v1.result.*` / `.event.*`). */
  publish(subject: string, message: AnyMessage, headers?: Record<string, string>): Promise<void>;
  /** Receives log messages matching `subject` (NATS wildcards `*`, `>` allowed), in order. */
  subscribe(subject: string, handler: (m: Received) => void | Promise<void>, opts?: SubscribeOptions): Promise<Stoppable>;
  /** Opens (creating if needed) a KV bucket whose values are messages of `kind`. */
  kv<K extends MessageKind>(bucket: string, kind: K, opts?: KvOptions): Promise<KvBucket<MessageMap[K]>>;
  /** Opens (creating if needed) an object bucket. */
  objects(bucket: string, opts?: { ttlMs?: number }): Promise<ObjectBucket>;
  /** Stops all consumers and subscriptions and releases the connection. */
  close(): Promise<void>;
}
