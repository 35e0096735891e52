// No SDK is registered in this file: it checks the built-in W3C fallback and the no-op path.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createTraceState, propagation, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { inSpan } from "./in-span.js";
import { extractTraceContext, injectTraceHeaders } from "./trace-headers.js";

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID = "b7ad6b7169203331";
const remote = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: TRACE_ID,
  spanId: SPAN_ID,
  traceFlags: TraceFlags.SAMPLED,
  traceState: createTraceState("vendor=a"),
});

describe("trace headers without a registered propagator", () => {
  test("the API has no propagator here, so the built-in codec is what runs", () => {
    assert.deepEqual(propagation.fields(), []);
  });

  test("inject writes a W3C traceparent and tracestate and keeps the caller's headers", () => {
    const h = injectTraceHeaders({ "mergeloom-job": "j1" }, remote);
    assert.deepEqual(h, { "mergeloom-job": "j1", traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`, tracestate: "vendor=a" });
  });

  test("inject writes nothing when the context has no span", () => {
    assert.deepEqual(injectTraceHeaders({ a: "1" }, ROOT_CONTEXT), { a: "1" });
  });

  test("extract round-trips inject as a remote span context, matching header names case-insensitively", () => {
    const sc = trace.getSpanContext(extractTraceContext({ TraceParent: `00-${TRACE_ID}-${SPAN_ID}-01`, tracestate: "vendor=a" }));
    assert.deepEqual(
      { traceId: sc?.traceId, spanId: sc?.spanId, flags: sc?.traceFlags, remote: sc?.isRemote, state: sc?.traceState?.get("vendor") },
      { traceId: TRACE_ID, spanId: SPAN_ID, flags: 1, remote: true, state: "a" },
    );
  });

  test("malformed, all-zero or version-ff traceparents are ignored", () => {
    for (const bad of [
      "garbage",
      `00-${"0".repeat(32)}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${"0".repeat(16)}-01`,
      `ff-${TRACE_ID}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${SPAN_ID}-01-extra`,
      `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`,
    ]) {
      assert.equal(trace.getSpanContext(extractTraceContext({ traceparent: bad })), undefined, bad);
    }
  });

  test("headers without trace context yield no span context", () => {
    const ctx = extractTraceContext({});
    assert.equal(trace.getSpanContext(ctx), undefined);
  });

  test("without an SDK inSpan still runs fn, with a non-recording span continuing the explicit parent", async () => {
    const out = await inSpan(
      "merge",
      {},
      async (span) => {
        assert.equal(span.isRecording(), false);
        return injectTraceHeaders({}, trace.setSpan(ROOT_CONTEXT, span));
      },
      { parent: remote },
    );
    assert.equal(out.traceparent, `00-${TRACE_ID}-${SPAN_ID}-01`);
  });
});
