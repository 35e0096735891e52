import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { propagation } from "@opentelemetry/api";
import { MergeloomError } from "@mergeloom/proto/errors";
import { inSpan } from "@mergeloom/proto/tracing";
import { injectTraceHeaders } from "@mergeloom/proto/trace-headers";
import type { SpanLine } from "./json-file-span-exporter.js";
import { otlpConfig, parseKeyValues, startTelemetry } from "./start-telemetry.js";

const tmp = () => mkdtempSync(join(tmpdir(), "ml-telemetry-"));
const readSpans = (file: string): SpanLine[] =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SpanLine);

interface Posted {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A minimal OTLP/HTTP receiver on 127.0.0.1 that records every request. */
async function startReceiver(): Promise<{ endpoint: string; posts: Posted[]; close(): Promise<void> }> {
  const posts: Posted[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw;
      posts.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    posts,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("startTelemetry", () => {
  test("with a trace file, stage spans of one job land in the file as one trace with service name and W3C propagation", async () => {
    const dir = tmp();
    try {
      const file = join(dir, "spans.jsonl");
      const t = await startTelemetry({ serviceName: "mergeloom-coordinator", traceFile: file, env: {} });
      assert.equal(t.enabled, true);
      assert.deepEqual(propagation.fields().sort(), ["baggage", "traceparent", "tracestate"]);
      let traceparent = "";
      await inSpan("job merge", { "mergeloom.job.id": "j1" }, async () => {
        await new Promise((r) => setTimeout(r, 2));
        await inSpan("plan", {}, async () => {
          traceparent = injectTraceHeaders({}).traceparent ?? "";
        });
      }).finally(() => t.shutdown());
      const spans = readSpans(file);
      const root = spans.find((s) => s.name === "job merge")!;
      const plan = spans.find((s) => s.name === "plan")!;
      assert.equal(spans.length, 2);
      assert.equal(plan.parentSpanId, root.spanId);
      assert.equal(plan.traceId, root.traceId);
      assert.equal(root.resource["service.name"], "mergeloom-coordinator");
      assert.equal(root.attributes["mergeloom.job.id"], "j1");
      assert.equal(traceparent, `00-${plan.traceId}-${plan.spanId}-01`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("OTEL_SERVICE_NAME beats the option and OTEL_RESOURCE_ATTRIBUTES are added to the resource", async () => {
    const dir = tmp();
    try {
      const file = join(dir, "spans.jsonl");
      const t = await startTelemetry({
        serviceName: "mergeloom-worker",
        traceFile: file,
        env: { OTEL_SERVICE_NAME: "merge-farm", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=ci,team=ml%20infra,service.name=ignored" },
      });
      await inSpan("load", {}, async () => {}).finally(() => t.shutdown());
      const [s] = readSpans(file);
      assert.equal(s.resource["service.name"], "merge-farm");
      assert.equal(s.resource["deployment.environment"], "ci");
      assert.equal(s.resource["team"], "ml infra");
      assert.equal(s.resource["process.pid"], process.pid);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("with OTEL_EXPORTER_OTLP_ENDPOINT set, shutdown posts the spans as OTLP/JSON to /v1/traces with the configured headers", async () => {
    const rx = await startReceiver();
    try {
      const t = await startTelemetry({
        serviceName: "mergeloom-worker",
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint + "/", OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=s%20ecret", OTEL_LOG_LEVEL: "none" },
      });
      let traceId = "";
      let postedBeforeShutdown = -1;
      try {
        await inSpan("merge", { "mergeloom.task.id": "t-1", "mergeloom.bytes.written": 64 }, async (span) => {
          traceId = span.spanContext().traceId;
        });
        postedBeforeShutdown = rx.posts.length;
      } finally {
        await t.shutdown();
      }
      assert.equal(postedBeforeShutdown, 0, "spans are batched, not posted one by one");
      assert.equal(rx.posts.length, 1);
      const [post] = rx.posts;
      assert.equal(post.method, "POST");
      assert.equal(post.url, "/v1/traces");
      assert.equal(post.headers["x-api-key"], "s ecret");
      assert.match(String(post.headers["content-type"]), /application\/json/);
      const body = JSON.parse(post.body.toString("utf8"));
      const rs = body.resourceSpans[0];
      const svc = rs.resource.attributes.find((a: { key: string }) => a.key === "service.name");
      assert.equal(svc.value.stringValue, "mergeloom-worker");
      const span = rs.scopeSpans[0].spans[0];
      assert.equal(rs.scopeSpans[0].scope.name, "mergeloom");
      assert.equal(span.name, "merge");
      assert.equal(span.traceId, traceId);
      const task = span.attributes.find((a: { key: string }) => a.key === "mergeloom.task.id");
      assert.equal(task.value.stringValue, "t-1");
    } finally {
      await rx.close();
    }
  });

  test("OTEL_SDK_DISABLED=true or no configured exporter registers nothing and spans are no-ops", async () => {
    const dir = tmp();
    try {
      const file = join(dir, "spans.jsonl");
      const off = await startTelemetry({
        serviceName: "x",
        traceFile: file,
        env: { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" },
      });
      const none = await startTelemetry({ serviceName: "x", env: { OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" } });
      assert.equal(off.enabled, false);
      assert.equal(none.enabled, false);
      assert.equal(existsSync(file), false);
      assert.deepEqual(propagation.fields(), []);
      assert.equal(await inSpan("plan", {}, async (span) => span.isRecording()), false);
      await off.shutdown();
      await none.shutdown();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a second start while one is active is a USAGE error; after shutdown the SDK can start again", async () => {
    const dir = tmp();
    try {
      const first = await startTelemetry({ serviceName: "a", traceFile: join(dir, "a.jsonl"), env: {} });
      await assert.rejects(
        startTelemetry({ serviceName: "b", traceFile: join(dir, "b.jsonl"), env: {} }),
        (e) => e instanceof MergeloomError && e.code === "USAGE",
      );
      await first.shutdown();
      await first.shutdown();
      const second = await startTelemetry({ serviceName: "c", traceFile: join(dir, "c.jsonl"), env: {} });
      await inSpan("write", {}, async () => {});
      await second.shutdown();
      assert.deepEqual(
        readSpans(join(dir, "c.jsonl")).map((s) => [s.name, s.resource["service.name"]]),
        [["write", "c"]],
      );
      assert.deepEqual(readSpans(join(dir, "a.jsonl")), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("otlpConfig", () => {
  test("the traces endpoint is used as is and wins over the general endpoint, which gets /v1/traces appended", () => {
    assert.equal(
      otlpConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom", OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:1" })?.url,
      "http://c:4318/custom",
    );
    assert.equal(otlpConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318//" })?.url, "http://c:4318/v1/traces");
  });

  test("OTEL_TRACES_EXPORTER=otlp without an endpoint uses the default collector; none or nothing set disables export", () => {
    assert.equal(otlpConfig({ OTEL_TRACES_EXPORTER: "otlp" })?.url, "http://localhost:4318/v1/traces");
    assert.equal(otlpConfig({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }), null);
    assert.equal(otlpConfig({}), null);
  });

  test("signal-specific headers override general ones", () => {
    assert.deepEqual(
      otlpConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_EXPORTER_OTLP_HEADERS: "a=1,b=2", OTEL_EXPORTER_OTLP_TRACES_HEADERS: "b=3" })?.headers,
      { a: "1", b: "3" },
    );
  });

  test("key-value lists are percent-decoded and malformed pairs are skipped", () => {
    assert.deepEqual(parseKeyValues(" a = x%2Cy ,novalue,=v,bad=%E0%A4%A,c="), { a: "x,y", c: "" });
  });
});
