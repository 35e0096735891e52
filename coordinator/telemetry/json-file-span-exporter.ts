/**
 * A SpanExporter that appends finished spans to a file as JSON lines, for users without a
 * collector (`--trace-file F`). One line per span:
 *   {"traceId","spanId","parentSpanId"|null,"name","kind":"CONSUMER","startTimeUnixNano":"…",
 *    "endTimeUnixNano":"…","durationMs","attributes",{…},"status":{"code":"ERROR","message"},
 *    "events":[…],"links":[…],"scope","resource":{"service.name":…}}
 * Times are decimal strings of Unix nanoseconds (as in OTLP/JSON). The file is opened in append
 * mode and each batch is one write, so several processes may share a file and a restart keeps
 * earlier spans; spans of different runs are told apart by traceId.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { SpanKind, SpanStatusCode, type AttributeValue, type HrTime } from "@opentelemetry/api";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import { StorageError } from "@mergeloom/engine/errors";

type ExportCallback = Parameters<SpanExporter["export"]>[1];
type ExportResultCode = Parameters<ExportCallback>[0]["code"];
const SUCCESS = 0 as ExportResultCode;
const FAILED = 1 as ExportResultCode;

/** The shape of one line, for readers (tests, tools). */
export interface SpanLine {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: keyof typeof SpanKind;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  durationMs: number;
  attributes: Record<string, AttributeValue | undefined>;
  status: { code: keyof typeof SpanStatusCode; message?: string };
  events: { name: string; timeUnixNano: string; attributes: Record<string, AttributeValue | undefined> }[];
  links: { traceId: string; spanId: string; attributes: Record<string, AttributeValue | undefined> }[];
  scope: string;
  resource: Record<string, AttributeValue | undefined>;
}

function nanos(t: HrTime): string {
  return (BigInt(t[0]) * 1_000_000_000n + BigInt(t[1])).toString();
}

export function toSpanLine(s: ReadableSpan): SpanLine {
  const ctx = s.spanContext();
  return {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? null,
    name: s.name,
    kind: SpanKind[s.kind] as keyof typeof SpanKind,
    startTimeUnixNano: nanos(s.startTime),
    endTimeUnixNano: nanos(s.endTime),
    durationMs: s.duration[0] * 1e3 + s.duration[1] / 1e6,
    attributes: { ...s.attributes },
    status: { code: SpanStatusCode[s.status.code] as keyof typeof SpanStatusCode, ...(s.status.message ? { message: s.status.message } : {}) },
    events: s.events.map((e) => ({ name: e.name, timeUnixNano: nanos(e.time), attributes: { ...e.attributes } })),
    links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, attributes: { ...l.attributes } })),
    scope: s.instrumentationScope.name,
    resource: { ...s.resource.attributes },
  };
}

export class JsonFileSpanExporter implements SpanExporter {
  private fd: number | null;

  /** Opens (creating) `path` for appending now, so a bad path fails at startup, not at the first span. */
  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, "a");
    } catch (err) {
      throw new StorageError(`open trace file ${path}: ${(err as Error).message}; pass a writable path to --trace-file`, { cause: err });
    }
  }

  export(spans: ReadableSpan[], done: ExportCallback): void {
    if (this.fd === null) return done({ code: FAILED, error: new StorageError(`write trace file ${this.path}: exporter is shut down`) });
    try {
      writeSync(this.fd, spans.map((s) => JSON.stringify(toSpanLine(s)) + "\n").join(""));
      done({ code: SUCCESS });
    } catch (err) {
      done({ code: FAILED, error: err as Error });
    }
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}
