import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { MergeloomError } from "@mergeloom/proto/errors";
import { startHealthServer } from "./health-server.js";
import { WorkerMetrics } from "./worker-metrics.js";

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

describe("startHealthServer", () => {
  test("/healthz answers 200 while live and 503 once not live", async () => {
    let live = true;
    const s = await startHealthServer({ port: 0, host: "127.0.0.1", metrics: new WorkerMetrics(), ready: () => true, live: () => live });
    try {
      assert.equal((await get(s.port, "/healthz")).status, 200);
      live = false;
      assert.equal((await get(s.port, "/healthz")).status, 503);
    } finally {
      await s.close();
    }
  });

  test("/readyz follows the ready callback: 503 before ready and while draining, 200 when ready", async () => {
    let ready = false;
    const s = await startHealthServer({ port: 0, host: "127.0.0.1", metrics: new WorkerMetrics(), ready: () => ready });
    try {
      assert.equal((await get(s.port, "/readyz")).status, 503);
      ready = true;
      assert.equal((await get(s.port, "/readyz")).status, 200);
      ready = false;
      assert.equal((await get(s.port, "/readyz")).status, 503);
      assert.equal((await get(s.port, "/healthz")).status, 200, "liveness defaults to live");
    } finally {
      await s.close();
    }
  });

  test("/metrics serves the worker's counters in Prometheus text format", async () => {
    const metrics = new WorkerMetrics();
    metrics.taskStarted(2);
    metrics.taskFinished(100, 4096, 2048);
    const s = await startHealthServer({ port: 0, host: "127.0.0.1", metrics, ready: () => true });
    try {
      const r = await get(s.port, "/metrics");
      assert.equal(r.status, 200);
      assert.match(r.type, /^text\/plain; version=0\.0\.4/);
      assert.match(r.body, /^mergeloom_worker_tasks_done_total 1$/m);
      assert.match(r.body, /^mergeloom_worker_tasks_redelivered_total 1$/m);
      assert.match(r.body, /^mergeloom_worker_bytes_read_total 4096$/m);
      assert.match(r.body, /^mergeloom_worker_bytes_written_total 2048$/m);
    } finally {
      await s.close();
    }
  });

  test("unknown paths answer 404 and list the served paths", async () => {
    const s = await startHealthServer({ port: 0, host: "127.0.0.1", metrics: new WorkerMetrics(), ready: () => true });
    try {
      const r = await get(s.port, "/nope");
      assert.equal(r.status, 404);
      assert.match(r.body, /\/healthz, \/readyz, \/metrics/);
    } finally {
      await s.close();
    }
  });

  test("a port already in use fails with a typed error naming the port and the flag", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      await assert.rejects(
        startHealthServer({ port, host: "127.0.0.1", metrics: new WorkerMetrics(), ready: () => true }),
        (err: unknown) => err instanceof MergeloomError && err.code === "USAGE" && err.message.includes(`port ${port}`) && err.message.includes("--http-port"),
      );
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  test("close() stops listening so the port can be reused", async () => {
    const s = await startHealthServer({ port: 0, host: "127.0.0.1", metrics: new WorkerMetrics(), ready: () => true });
    await get(s.port, "/healthz");
    await s.close();
    await assert.rejects(get(s.port, "/healthz"));
  });
});
