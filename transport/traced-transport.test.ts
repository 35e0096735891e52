import { test, describe, afterEach } from "node:test";
import assert from "node:assert/strict";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-node";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import { MemoryBroker, MemoryTransport } from "./memory-transport.js";
import { headers as H, subjects } from "@mergeloom/proto/subjects";
import type { Transport } from "./transport.js";
import { inSpan } from "@mergeloom/proto/tracing";
import { processSpanName, traced } from "./traced-transport.js";

// Stands in for an entry point's startTelemetry(): registers W3C propagation and AsyncLocalStorage.
const exporter = new InMemorySpanExporter();
new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();

const task = (taskId: string): MergeTask => ({ jobId: "job-1", taskId, seed: 1, tensors: [] });
const result = (taskId: string): MergeTaskResult => ({ taskId, tensors: [{ name: "w", byteLength: 8 }], bytesRead: 16, bytesWritten: 8, durationMs: 3 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);

describe("traced transport over the in-memory transport", () => {
  const open: Transport[] = [];
  // Two transports on one broker stand for the coordinator and a worker process.
  const pair = () => {
    const broker = new MemoryBroker();
    const coordinator = traced(new MemoryTransport({ broker }));
    const worker = traced(new MemoryTransport({ broker }));
    open.push(coordinator, worker);
    return { coordinator, worker };
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
    exporter.reset();
  });

  test("a task published inside a span is processed in a CONSUMER child span of it, in the same trace", async () => {
    const { coordinator, worker } = pair();
    let stageParent: string | undefined;
    await worker.consume(subjects.taskMerge, "merge-task", async () => {
      await inSpan("merge", {}, async () => {
        stageParent = trace.getActiveSpan()?.spanContext().spanId;
      });
    });
    const caller = { [H.jobId]: "job-1", [H.taskId]: "t-1" };
    await inSpan("dispatch", {}, () => coordinator.publishTask(subjects.taskMerge, "merge-task", task("t-1"), caller));
    assert.deepEqual(caller, { [H.jobId]: "job-1", [H.taskId]: "t-1" }, "the caller's headers object is not mutated");
    await waitFor("the process span", () => spans("process mergeloom.v1.task.merge").length === 1);

    const [dispatch] = spans("dispatch");
    const [proc] = spans("process mergeloom.v1.task.merge");
    const [merge] = spans("merge");
    assert.equal(proc.kind, SpanKind.CONSUMER);
    assert.equal(proc.spanContext().traceId, dispatch.spanContext().traceId);
    assert.equal(proc.parentSpanContext?.spanId, dispatch.spanContext().spanId);
    assert.equal(merge.parentSpanContext?.spanId, proc.spanContext().spanId);
    assert.equal(stageParent, merge.spanContext().spanId);
    assert.equal(proc.attributes["messaging.system"], "nats");
    assert.equal(proc.attributes["messaging.destination.name"], subjects.taskMerge);
    assert.equal(proc.attributes["messaging.delivery.attempt"], 1);
    assert.equal(proc.attributes["mergeloom.job.id"], "job-1");
    assert.equal(proc.attributes["mergeloom.task.id"], "t-1");
  });

  test("a failed delivery's span has status ERROR and error.type, and the redelivery is a sibling with attempt 2", async () => {
    const { coordinator, worker } = pair();
    let calls = 0;
    await worker.consume(
      subjects.taskMerge,
      "merge-task",
      async () => {
        if (++calls === 1) throw new MergeloomError("STORAGE_FAILED", "read shard: connection reset", { retryable: true });
      },
      { backoffMs: [5], ackWaitMs: 2000 },
    );
    await inSpan("dispatch", {}, () => coordinator.publishTask(subjects.taskMerge, "merge-task", task("t-2")));
    await waitFor("two deliveries", () => spans("process mergeloom.v1.task.merge").length === 2);

    const [dispatch] = spans("dispatch");
    const [first, second] = spans("process mergeloom.v1.task.merge").sort(
      (a, b) => Number(a.attributes["messaging.delivery.attempt"]) - Number(b.attributes["messaging.delivery.attempt"]),
    );
    assert.equal(first.attributes["messaging.delivery.attempt"], 1);
    assert.equal(first.status.code, SpanStatusCode.ERROR);
    assert.equal(first.attributes["error.type"], "STORAGE_FAILED");
    assert.equal(second.attributes["messaging.delivery.attempt"], 2);
    assert.equal(second.status.code, SpanStatusCode.UNSET);
    for (const s of [first, second]) assert.equal(s.parentSpanContext?.spanId, dispatch.spanContext().spanId);
  });

  test("a result published from a worker span is received in a process span under it, named without the job id", async () => {
    const { coordinator, worker } = pair();
    const got: string[] = [];
    await coordinator.subscribe(subjects.resultAll, async (m) => {
      got.push(m.subject);
    });
    await inSpan("write", {}, () => worker.publish(subjects.result("job-9"), { kind: "merge-result", body: result("t-3") }, { [H.jobId]: "job-9" }));
    await waitFor("the result", () => spans("process mergeloom.v1.result").length === 1);

    const [write] = spans("write");
    const [proc] = spans("process mergeloom.v1.result");
    assert.deepEqual(got, ["mergeloom.v1.result.job-9"]);
    assert.equal(proc.kind, SpanKind.CONSUMER);
    assert.equal(proc.parentSpanContext?.spanId, write.spanContext().spanId);
    assert.equal(proc.spanContext().traceId, write.spanContext().traceId);
    assert.equal(proc.attributes["messaging.destination.name"], "mergeloom.v1.result.job-9");
    assert.equal(proc.attributes["mergeloom.job.id"], "job-9");
    assert.equal(typeof proc.attributes["messaging.message.id"], "string");
  });

  test("a subscriber's failure marks its process span ERROR and still reaches onError", async () => {
    const { coordinator, worker } = pair();
    const errors: unknown[] = [];
    await coordinator.subscribe(
      subjects.resultAll,
      () => {
        throw new TypeError("bad result");
      },
      { onError: (e) => errors.push(e) },
    );
    await worker.publish(subjects.result("job-3"), { kind: "merge-result", body: result("t-4") });
    await waitFor("the error", () => errors.length === 1);
    await waitFor("the span", () => spans("process mergeloom.v1.result").length === 1);
    const [proc] = spans("process mergeloom.v1.result");
    assert.ok(errors[0] instanceof TypeError);
    assert.equal(proc.status.code, SpanStatusCode.ERROR);
    assert.equal(proc.attributes["error.type"], "TypeError");
  });

  test("a message without trace context starts a new trace even when consume was called inside a span", async () => {
    const { coordinator, worker } = pair();
    await inSpan("worker startup", {}, () => worker.consume(subjects.taskMerge, "merge-task", async () => {}));
    await coordinator.publishTask(subjects.taskMerge, "merge-task", task("t-5"));
    await waitFor("the process span", () => spans("process mergeloom.v1.task.merge").length === 1);
    const [proc] = spans("process mergeloom.v1.task.merge");
    assert.equal(proc.parentSpanContext, undefined);
    assert.notEqual(proc.spanContext().traceId, spans("worker startup")[0].spanContext().traceId);
  });

  test("KV and object buckets pass through the decorator", async () => {
    const { coordinator, worker } = pair();
    await (await coordinator.objects("outputs")).put("a", new Uint8Array([1, 2, 3]));
    assert.deepEqual(await (await worker.objects("outputs")).getBytes("a"), new Uint8Array([1, 2, 3]));
  });
});

test("process span names keep the queue but cut ids off result and event subjects", () => {
  assert.equal(processSpanName("mergeloom.v1.task.merge"), "process mergeloom.v1.task.merge");
  assert.equal(processSpanName("mergeloom.v1.result.job-123"), "process mergeloom.v1.result");
  assert.equal(processSpanName("mergeloom.v1.event.job-123"), "process mergeloom.v1.event");
  assert.equal(processSpanName("other.subject"), "process other.subject");
});
