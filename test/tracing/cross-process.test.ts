/**
 * Trace context crosses process boundaries: a "coordinator" process opens the job span and hands
 * its traceparent to "worker" processes (as a NATS header would). One worker writes a trace file,
 * the other exports over OTLP/HTTP to a receiver in this test; together they form one trace with
 * the workers' spans under the coordinator's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { SpanLine } from "@mergeloom/coordinator/telemetry";
import { REPO_ROOT } from "../harness/repo-root.js";

const run = promisify(execFile);
// Compiled (dist/…/*.js) the fixture runs as is; under tsx (*.ts) it needs the tsx loader.
const compiled = import.meta.url.endsWith(".js");
const fixture = fileURLToPath(new URL(`./fixtures/trace-step.${compiled ? "js" : "ts"}`, import.meta.url));

/** The parent's environment without OTEL_* (a developer's collector stays out), plus `otel`. */
function childEnv(otel: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_")));
  return { ...env, ...otel };
}

async function step(
  service: string,
  file: string,
  span: string,
  opts: { traceparent?: string; otel?: Record<string, string> } = {},
): Promise<Record<string, string>> {
  const args = [...(compiled ? [] : ["--import", "tsx"]), fixture, service, file, span, ...(opts.traceparent ? [opts.traceparent] : [])];
  const { stdout } = await run(process.execPath, args, { cwd: REPO_ROOT, env: childEnv(opts.otel ?? {}), timeout: 20_000 });
  return JSON.parse(stdout.trim()) as Record<string, string>;
}

const readSpans = (file: string): SpanLine[] =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SpanLine);

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

/** Collects the spans of every OTLP/JSON POST to /v1/traces. */
async function startReceiver() {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/traces") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

test("spans from a coordinator process and worker processes continuing its traceparent form one trace with the expected parents", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ml-xproc-"));
  const rx = await startReceiver();
  try {
    const coordFile = join(dir, "coordinator.jsonl");
    const workerFile = join(dir, "worker.jsonl");
    const fromCoordinator = await step("mergeloom-coordinator", coordFile, "job merge");
    assert.match(fromCoordinator.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const [fromFileWorker, fromOtlpWorker] = await Promise.all([
      step("mergeloom-worker", workerFile, "merge", { traceparent: fromCoordinator.traceparent }),
      step("mergeloom-worker", "-", "load", { traceparent: fromCoordinator.traceparent, otel: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint } }),
    ]);

    const [job] = readSpans(coordFile);
    assert.equal(job.name, "job merge");
    assert.equal(job.parentSpanId, null);
    assert.equal(job.resource["service.name"], "mergeloom-coordinator");
    assert.equal(fromCoordinator.traceparent, `00-${job.traceId}-${job.spanId}-01`);

    const [merge] = readSpans(workerFile);
    assert.equal(merge.name, "merge");
    assert.equal(merge.traceId, job.traceId, "one trace across processes");
    assert.equal(merge.parentSpanId, job.spanId, "the worker span's parent is the coordinator span");
    assert.equal(merge.resource["service.name"], "mergeloom-worker");
    assert.equal(merge.attributes["mergeloom.worker.name"], "mergeloom-worker");
    assert.equal(fromFileWorker.traceparent, `00-${job.traceId}-${merge.spanId}-01`);

    assert.deepEqual(
      rx.spans.map((s) => [s.name, s.traceId, s.parentSpanId]),
      [["load", job.traceId, job.spanId]],
      "the OTLP worker's span reached the receiver under the coordinator span",
    );
    assert.equal(fromOtlpWorker.traceparent, `00-${job.traceId}-${rx.spans[0].spanId}-01`);
  } finally {
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
