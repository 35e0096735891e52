import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { MergeloomError } from "../errors.js";
import { ATTR_ERROR_TYPE, ATTR_JOB_ID, ATTR_TENSOR_COUNT, errorType, inSpan, SPAN_NAMES, TRACER_NAME } from "./in-span.js";

// The SDK stands in for an entry point's startTelemetry(); spans are kept in memory.
const exporter = new InMemorySpanExporter();
new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
const finished = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("inSpan", () => {
  test("returns the function's value and ends an OK span carrying the attributes under the mergeloom tracer", async () => {
    exporter.reset();
    const v = await inSpan(SPAN_NAMES.plan, { [ATTR_JOB_ID]: "job-7", [ATTR_TENSOR_COUNT]: 3 }, async (span) => {
      assert.equal(span.isRecording(), true);
      assert.equal(trace.getActiveSpan(), span, "the span is active inside fn");
      return 42;
    });
    assert.equal(v, 42);
    const [s] = finished("plan");
    assert.ok(s?.ended);
    assert.equal(s.kind, SpanKind.INTERNAL);
    assert.equal(s.status.code, SpanStatusCode.UNSET);
    assert.equal(s.instrumentationScope.name, TRACER_NAME);
    assert.deepEqual(s.attributes, { "mergeloom.job.id": "job-7", "mergeloom.tensor.count": 3 });
  });

  test("a thrown MergeloomError is re-thrown unchanged and marks the span ERROR with its code as error.type", async () => {
    exporter.reset();
    const err = new MergeloomError("CONFIG_INVALID", "config merge_method: unknown merge method 'tie' (known: linear)");
    await assert.rejects(
      inSpan("assemble", {}, async () => {
        await sleep(1);
        throw err;
      }),
      (e) => e === err,
    );
    const [s] = finished("assemble");
    assert.equal(s.status.code, SpanStatusCode.ERROR);
    assert.equal(s.status.message, err.message);
    assert.equal(s.attributes[ATTR_ERROR_TYPE], "CONFIG_INVALID");
    assert.equal(s.events[0]?.name, "exception");
    assert.equal(s.events[0]?.attributes?.["exception.message"], err.message);
    assert.ok(s.ended);
  });

  test("a synchronous throw inside fn is recorded too", async () => {
    exporter.reset();
    await assert.rejects(
      inSpan("write", {}, () => {
        throw new TypeError("bad");
      }),
      TypeError,
    );
    assert.equal(finished("write")[0].attributes[ATTR_ERROR_TYPE], "TypeError");
  });

  test("error.type is the Node system error code, the class name, or _OTHER for non-errors", () => {
    const enoent = Object.assign(new Error("open x: no such file"), { code: "ENOENT" });
    assert.equal(errorType(enoent), "ENOENT");
    assert.equal(errorType(new RangeError("r")), "RangeError");
    assert.equal(errorType("a string"), "_OTHER");
  });

  test("a span opened after an await inside another is its child in the same trace", async () => {
    exporter.reset();
    await inSpan("job merge", {}, async () => {
      await sleep(2);
      await Promise.all([inSpan("plan", {}, async () => sleep(1)), inSpan("dispatch", {}, async () => sleep(1))]);
    });
    const [root] = finished("job merge");
    assert.equal(root.parentSpanContext, undefined);
    for (const name of ["plan", "dispatch"]) {
      const [child] = finished(name);
      assert.equal(child.spanContext().traceId, root.spanContext().traceId);
      assert.equal(child.parentSpanContext?.spanId, root.spanContext().spanId);
    }
  });

  test("an explicit parent and kind override the active context", async () => {
    exporter.reset();
    await inSpan("load", {}, () => inSpan("merge", {}, async () => {}, { parent: ROOT_CONTEXT, kind: SpanKind.CONSUMER }));
    const [inner] = finished("merge");
    assert.equal(inner.parentSpanContext, undefined, "ROOT_CONTEXT as parent starts a new trace");
    assert.notEqual(inner.spanContext().traceId, finished("load")[0].spanContext().traceId);
    assert.equal(inner.kind, SpanKind.CONSUMER);
  });
});
