import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { MergeloomError } from "@mergeloom/proto/errors";
import { JsonFileSpanExporter, type SpanLine } from "./json-file-span-exporter.js";

const readLines = (path: string): SpanLine[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SpanLine);

test("each finished span becomes one parseable JSON line with ids, parent, times, attributes, status and service name", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ml-trace-"));
  try {
    const file = join(dir, "spans.jsonl");
    writeFileSync(file, '{"earlier":"run"}\n');
    // Not registered globally: the tracer is used directly, so nothing leaks into other tests.
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": "mergeloom-worker" }),
      spanProcessors: [new SimpleSpanProcessor(new JsonFileSpanExporter(file))],
    });
    const tracer = provider.getTracer("mergeloom");
    const parent = tracer.startSpan("job merge", { attributes: { "mergeloom.job.id": "j1" } }, context.active());
    const child = tracer.startSpan(
      "process mergeloom.v1.task.merge",
      { kind: SpanKind.CONSUMER, attributes: { "messaging.delivery.attempt": 2 } },
      trace.setSpan(context.active(), parent),
    );
    child.recordException(new Error("boom"));
    child.setStatus({ code: SpanStatusCode.ERROR, message: "boom" });
    child.end();
    parent.end();
    await provider.shutdown();

    const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
    assert.equal(lines[0], '{"earlier":"run"}', "the file is appended to, not truncated");
    const [c, p] = lines.slice(1).map((l) => JSON.parse(l) as SpanLine);
    assert.equal(lines.length, 3);
    assert.match(p.traceId, /^[0-9a-f]{32}$/);
    assert.match(p.spanId, /^[0-9a-f]{16}$/);
    assert.equal(p.parentSpanId, null);
    assert.equal(c.traceId, p.traceId);
    assert.equal(c.parentSpanId, p.spanId);
    assert.equal(c.name, "process mergeloom.v1.task.merge");
    assert.equal(c.kind, "CONSUMER");
    assert.equal(p.kind, "INTERNAL");
    assert.deepEqual(c.attributes, { "messaging.delivery.attempt": 2 });
    assert.deepEqual(p.attributes, { "mergeloom.job.id": "j1" });
    assert.deepEqual(c.status, { code: "ERROR", message: "boom" });
    assert.deepEqual(p.status, { code: "UNSET" });
    assert.equal(c.events[0].name, "exception");
    assert.equal(c.scope, "mergeloom");
    assert.equal(p.resource["service.name"], "mergeloom-worker");
    const start = BigInt(p.startTimeUnixNano);
    const end = BigInt(p.endTimeUnixNano);
    assert.ok(end >= start && start > 1_600_000_000_000_000_000n, "times are Unix nanoseconds");
    assert.ok(Math.abs(p.durationMs - Number(end - start) / 1e6) < 1e-3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an unwritable trace file fails at construction with a StorageError naming the path", () => {
  const path = join(tmpdir(), "no-such-dir-ml", "x", "spans.jsonl");
  assert.throws(
    () => new JsonFileSpanExporter(path),
    (e) => e instanceof MergeloomError && e.code === "STORAGE_FAILED" && e.message.includes(path),
  );
});

test("exporting after shutdown reports failure instead of throwing", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ml-trace-"));
  try {
    const exp = new JsonFileSpanExporter(join(dir, "s.jsonl"));
    await exp.shutdown();
    const code = await new Promise<number>((resolve) => exp.export([], (r) => resolve(r.code)));
    assert.equal(code, 1);
    assert.deepEqual(readLines(join(dir, "s.jsonl")), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
