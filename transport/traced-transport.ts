/**
 * Tracing as a decorator over any Transport (OTel kafkajs-instrumentation style):
 * - publishTask / publish inject the active trace context into the message headers (no producer
 *   span: the stage span that publishes, e.g. `dispatch`, is the parent the consumer sees);
 * - consume runs each delivery inside a CONSUMER span `process <subject>` whose parent is the
 *   context extracted from the headers, so a worker's `load`/`merge`/`write` spans (and the result
 *   it publishes) land in the coordinator's trace; redeliveries are sibling spans told apart by
 *   `messaging.delivery.attempt`;
 * - subscribe does the same per received log message (`process mergeloom.v1.result`), so the
 *   coordinator's handling of a result appears under the worker span that published it. A replay
 *   (`deliver: "all"`) after a restart adds new process spans to the original job's trace.
 * A message without trace context starts a new trace. Span names use the subject with ids cut off
 * (`mergeloom.v1.result.<job>` → `mergeloom.v1.result`); the full subject is an attribute.
 *
 * Propagation uses the entry point's registered propagator (see trace-headers.ts).
 */
import { SpanKind, type Attributes } from "@opentelemetry/api";
import type { AnyMessage, MessageKind, MessageMap } from "@mergeloom/proto/schemas";
import { headers as H, SUBJECT_ROOT } from "@mergeloom/proto/subjects";
import {
  resolveConsumeOptions,
  type AbandonedTask,
  type ConsumeOptions,
  type Delivery,
  type Handler,
  type KvBucket,
  type KvOptions,
  type ObjectBucket,
  type Received,
  type Stoppable,
  type SubscribeOptions,
  type Transport,
} from "./transport.js";
import { inSpan } from "@mergeloom/proto/tracing";
import {
  ATTR_DELIVERY_ATTEMPT,
  ATTR_JOB_ID,
  ATTR_MESSAGING_CONSUMER_GROUP,
  ATTR_MESSAGING_DESTINATION,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  ATTR_TASK_ID,
} from "@mergeloom/proto/tracing";
import { extractTraceContext, injectTraceHeaders } from "@mergeloom/proto/trace-headers";

/** Wraps `transport` so trace context flows through every message. KV and objects pass through. */
export function traced(transport: Transport): Transport {
  return new TracedTransport(transport);
}

/** `process <subject without ids>`: task subjects name a queue, result/event subjects end in a job id. */
export function processSpanName(subject: string): string {
  if (!subject.startsWith(`${SUBJECT_ROOT}.`)) return `process ${subject}`;
  const tokens = subject.split(".");
  const keep = tokens[2] === "task" ? 4 : 3;
  return `process ${tokens.slice(0, keep).join(".")}`;
}

function messageAttributes(subject: string, headers: Record<string, string>): Attributes {
  const attrs: Attributes = {
    [ATTR_MESSAGING_SYSTEM]: "nats",
    [ATTR_MESSAGING_OPERATION_TYPE]: "process",
    [ATTR_MESSAGING_DESTINATION]: subject,
  };
  if (headers[H.jobId]) attrs[ATTR_JOB_ID] = headers[H.jobId];
  if (headers[H.taskId]) attrs[ATTR_TASK_ID] = headers[H.taskId];
  return attrs;
}

class TracedTransport implements Transport {
  constructor(private readonly inner: Transport) {}

  publishTask<K extends MessageKind>(subject: string, kind: K, body: MessageMap[K], headers: Record<string, string> = {}): Promise<void> {
    return this.inner.publishTask(subject, kind, body, injectTraceHeaders({ ...headers }));
  }

  consume<K extends MessageKind>(subject: string, kind: K, handler: Handler<MessageMap[K]>, opts?: ConsumeOptions): Promise<Stoppable> {
    const group = resolveConsumeOptions(subject, opts).durable;
    const wrapped: Handler<MessageMap[K]> = (d: Delivery<MessageMap[K]>) =>
      inSpan(
        processSpanName(d.subject),
        { ...messageAttributes(d.subject, d.headers), [ATTR_MESSAGING_CONSUMER_GROUP]: group, [ATTR_DELIVERY_ATTEMPT]: d.attempt },
        () => handler(d),
        { kind: SpanKind.CONSUMER, parent: extractTraceContext(d.headers) },
      );
    return this.inner.consume(subject, kind, wrapped, opts);
  }

  watchAbandoned(subject: string, onAbandoned: (a: AbandonedTask) => void, opts?: Pick<ConsumeOptions, "durable">): Promise<Stoppable> {
    return this.inner.watchAbandoned(subject, onAbandoned, opts);
  }

  publish(subject: string, message: AnyMessage, headers: Record<string, string> = {}): Promise<void> {
    return this.inner.publish(subject, message, injectTraceHeaders({ ...headers }));
  }

  subscribe(subject: string, handler: (m: Received) => void | Promise<void>, opts?: SubscribeOptions): Promise<Stoppable> {
    return this.inner.subscribe(
      subject,
      (m) =>
        inSpan(processSpanName(m.subject), { ...messageAttributes(m.subject, m.headers), [ATTR_MESSAGING_MESSAGE_ID]: String(m.seq) }, async () => handler(m), {
          kind: SpanKind.CONSUMER,
          parent: extractTraceContext(m.headers),
        }),
      opts,
    );
  }

  kv<K extends MessageKind>(bucket: string, kind: K, opts?: KvOptions): Promise<KvBucket<MessageMap[K]>> {
    return this.inner.kv(bucket, kind, opts);
  }

  objects(bucket: string, opts?: { ttlMs?: number }): Promise<ObjectBucket> {
    return this.inner.objects(bucket, opts);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
