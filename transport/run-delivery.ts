/**
 * The client half of a task delivery, shared by both transports so their semantics match: it
 * decodes the body, runs the handler under a lease (ackWaitMs, renewed by heartbeat), and turns
 * the handler's outcome into ack / term / nak-with-backoff.
 */
import { decodeMessage, type CodecOptions } from "@mergeloom/proto/codec";
import { errorMessage, isPermanent } from "@mergeloom/proto/errors";
import { toWireError } from "@mergeloom/proto/wire-error";
import type { MessageKind, MessageMap } from "@mergeloom/proto/schemas";
import { backoffFor, type Delivery, type Handler, type ResolvedConsumeOptions } from "./transport.js";
import { TransportError } from "./transport-errors.js";

export type DeliveryOutcome =
  | { kind: "ack" }
  | { kind: "term"; reason: string }
  | { kind: "nak"; delayMs: number }
  /** The lease lapsed and the handler failed: the server has already redelivered, send nothing. */
  | { kind: "none" };

export interface RawDelivery {
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  attempt: number;
  /** Tells the server the handler is still working (extends its ack deadline). */
  renew(): void;
}

export async function runDelivery<K extends MessageKind>(
  raw: RawDelivery,
  kind: K,
  handler: Handler<MessageMap[K]>,
  opts: ResolvedConsumeOptions,
  stopSignal: AbortSignal,
  codec: CodecOptions,
): Promise<DeliveryOutcome> {
  let body: MessageMap[K];
  try {
    body = decodeMessage(raw.data, { ...codec, subject: raw.subject, expect: kind }).body as MessageMap[K];
  } catch (err) {
    // Malformed bytes stay malformed: never redeliver them.
    const reason = errorMessage(err);
    try {
      opts.onRejected?.(toWireError(err), raw.headers, raw.subject);
    } catch {
      // reporting must not change the outcome
    }
    return { kind: "term", reason };
  }
  const lease = new AbortController();
  const onStop = () => lease.abort(stopSignal.reason);
  if (stopSignal.aborted) onStop();
  else stopSignal.addEventListener("abort", onStop, { once: true });
  let timer: NodeJS.Timeout | undefined;
  let lapsed = false;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      lapsed = true;
      lease.abort(new TransportError(`process ${raw.subject}: lease lapsed after ${opts.ackWaitMs} ms without heartbeat; the task is redelivered`));
    }, opts.ackWaitMs);
    timer.unref?.();
  };
  arm();
  const delivery: Delivery<MessageMap[K]> = {
    body,
    headers: raw.headers,
    attempt: raw.attempt,
    maxDeliver: opts.maxDeliver,
    subject: raw.subject,
    signal: lease.signal,
    heartbeat: () => {
      if (lease.signal.aborted) return;
      raw.renew();
      arm();
    },
  };
  try {
    await handler(delivery);
    return { kind: "ack" };
  } catch (err) {
    if (isPermanent(err)) return { kind: "term", reason: errorMessage(err) };
    if (lapsed) return { kind: "none" };
    // Out of attempts: terminate so the message leaves the work queue instead of lingering.
    if (raw.attempt >= opts.maxDeliver) return { kind: "term", reason: `gave up after ${raw.attempt} attempts: ${errorMessage(err)}` };
    return { kind: "nak", delayMs: backoffFor(opts, raw.attempt) };
  } finally {
    clearTimeout(timer);
    stopSignal.removeEventListener("abort", onStop);
  }
}

/** NATS-style subject match: `*` is one token, a trailing `>` is one or more. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== "*" && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}
