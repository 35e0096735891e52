/**
 * The one helper every stage span goes through: an active span (children and outgoing messages
 * pick it up through the context manager), errors recorded with status ERROR and a low-cardinality
 * `error.type`, and the span always ended. Without a registered SDK the API hands out no-op spans,
 * so library code calls this unconditionally.
 */
import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type Tracer } from "@opentelemetry/api";
import { errorMessage, MergeloomError } from "../errors.js";
import { ATTR_ERROR_TYPE, TRACER_NAME } from "./span-attributes.js";

export * from "./span-attributes.js";

export interface InSpanOptions {
  /** Default INTERNAL. */
  kind?: SpanKind;
  /** Parent context (default: the active one). */
  parent?: Context;
  links?: Link[];
}

/** Looked up per call: a cached tracer would outlive an SDK shut down and started again. */
export function mergeloomTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/**
 * Runs `fn` inside a new active span named `name` (a stage name, never an id: see SPAN_NAMES).
 * A throw or rejection is recorded on the span and re-thrown unchanged.
 */
export function inSpan<T>(name: string, attrs: Attributes, fn: (span: Span) => Promise<T>, opts: InSpanOptions = {}): Promise<T> {
  return mergeloomTracer().startActiveSpan(
    name,
    { kind: opts.kind ?? SpanKind.INTERNAL, attributes: attrs, links: opts.links },
    opts.parent ?? context.active(),
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        recordSpanError(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/** Marks `span` failed: exception event, status ERROR with the message, `error.type`. */
export function recordSpanError(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : errorMessage(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(err) });
  span.setAttribute(ATTR_ERROR_TYPE, errorType(err));
}

/** A low-cardinality error class: the MergeloomError code, a Node system error code, the class name. */
export function errorType(err: unknown): string {
  if (err instanceof MergeloomError) return err.code;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && code ? code : err.name || "Error";
  }
  return "_OTHER";
}
