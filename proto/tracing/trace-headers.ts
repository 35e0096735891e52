/**
 * W3C trace context in message headers. Library code only uses `@opentelemetry/api`: the entry
 * point's SDK setup (coordinator/telemetry/start-telemetry.ts) registers the W3C trace-context
 * (+ baggage) propagator, and `propagation.inject/extract` use it. When no propagator is
 * registered (an embedding app registered a tracer provider and context manager but no
 * propagator), a built-in `traceparent`/`tracestate` codec takes over, so trace context still
 * crosses processes. Without any SDK the API has no context manager either: spans are no-ops and
 * nothing is injected unless a context is passed explicitly.
 */
import { context, createTraceState, isSpanContextValid, propagation, trace, type Context, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { headers as H } from "../subjects.js";

type Headers = Record<string, string>;

const setter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/** Header names are matched case-insensitively: some gateways and clients capitalise them. */
const getter: TextMapGetter<Headers> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => headerValue(carrier, key),
};

function headerValue(carrier: Headers, key: string): string | undefined {
  if (key in carrier) return carrier[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(carrier)) if (k.toLowerCase() === lower) return carrier[k];
  return undefined;
}

/** No propagator registered: the API's no-op propagator declares no fields. */
function hasGlobalPropagator(): boolean {
  return propagation.fields().length > 0;
}

/**
 * Writes the trace context of `ctx` (default: the active context) into `headers` and returns them.
 * Without a valid span in `ctx` nothing is written, so caller-provided headers are kept.
 */
export function injectTraceHeaders(headers: Headers, ctx: Context = context.active()): Headers {
  if (hasGlobalPropagator()) {
    propagation.inject(ctx, headers, setter);
    return headers;
  }
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return headers;
  headers[H.traceparent] = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
  const state = sc.traceState?.serialize();
  if (state) headers[H.tracestate] = state;
  return headers;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The context carried by `headers`, on top of `base` (default: the active context minus its span, so a message
 * without trace context starts a new trace instead of joining whatever the receiver had active).
 */
export function extractTraceContext(headers: Headers, base: Context = trace.deleteSpan(context.active())): Context {
  if (hasGlobalPropagator()) return propagation.extract(base, headers, getter);
  const m = TRACEPARENT.exec(headerValue(headers, H.traceparent)?.trim() ?? "");
  // Version ff is invalid; version 00 has exactly four fields (later versions may append more).
  if (!m || m[1] === "ff" || (m[1] === "00" && m[5] !== undefined)) return base;
  const state = headerValue(headers, H.tracestate);
  const sc = {
    traceId: m[2],
    spanId: m[3],
    traceFlags: parseInt(m[4], 16) & 0x01,
    isRemote: true,
    traceState: state ? createTraceState(state) : undefined,
  };
  return isSpanContextValid(sc) ? trace.setSpanContext(base, sc) : base;
}
