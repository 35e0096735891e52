import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { connectNatsTransport } from "@mergeloom/transport";
import { subjects } from "@mergeloom/proto/subjects";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { describeTransportConformance } from "./conformance.js";

let server: NatsServerHandle;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server?.stop();
});

// A fresh prefix per transport: unique streams, consumers and buckets for every test.
const uniquePrefix = () => `t${randomUUID().slice(0, 8)}`;

describeTransportConformance("nats", () => connectNatsTransport({ servers: server.url, prefix: uniquePrefix() }));

test("queued tasks and kv values survive a nats-server restart", async () => {
  const prefix = uniquePrefix();
  const t = await connectNatsTransport({ servers: server.url, prefix });
  try {
    await t.publishTask(subjects.taskMerge, "merge-task", { jobId: "j", taskId: "kept", seed: 1, tensors: [] });
    const kv = await t.kv("jobs", "job");
    const rev = await kv.create("j", {
      jobId: "j",
      state: "running",
      createdAt: 1,
      updatedAt: 1,
      totalTasks: 1,
      doneTasks: 0,
      failedTasks: 0,
      outputDir: "/o",
    });
    await server.restart();
    const seen: string[] = [];
    await t.consume(subjects.taskMerge, "merge-task", async (d) => void seen.push(d.body.taskId), { ackWaitMs: 1000 });
    const end = Date.now() + 10_000;
    while (!seen.length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, ["kept"]);
    assert.equal((await kv.get("j"))?.revision, rev);
  } finally {
    await t.close();
  }
});

test("connecting to a server that is not there fails with a transport error naming the address", async () => {
  await assert.rejects(
    connectNatsTransport({ servers: "nats://127.0.0.1:1" }),
    (e: Error & { code?: string }) => e.code === "TRANSPORT_FAILED" && /127\.0\.0\.1:1/.test(e.message),
  );
});
