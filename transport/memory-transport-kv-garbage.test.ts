import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryBroker, MemoryTransport } from "./memory-transport.js";
import { ProtocolError } from "@mergeloom/proto/errors";
import type { JobRecord } from "@mergeloom/proto/records";

const job = (jobId: string): JobRecord => ({
  jobId,
  state: "running",
  createdAt: 1,
  updatedAt: 1,
  totalTasks: 1,
  doneTasks: 0,
  failedTasks: 0,
  outputDir: "/o",
});

describe("undecodable KV values (in-memory transport, as on NATS)", () => {
  test("get throws a ProtocolError naming bucket and key; a watch reports the key to onError and goes on", async () => {
    const broker = new MemoryBroker();
    const t = new MemoryTransport({ broker, role: "coordinator" });
    const kv = await t.kv("jobs-x", "job", { history: 1 });
    await kv.put("good", job("good"));
    // Bytes written by something other than mergeloom (the store is what NATS would hold).
    broker.kvs.get("jobs-x")!.write("bad", Uint8Array.of(0xc1, 0xff));
    await assert.rejects(
      () => kv.get("bad"),
      (e: Error) => e instanceof ProtocolError && /kv jobs-x\/bad/.test(e.message),
    );
    const seen: string[] = [];
    const errors: string[] = [];
    const w = await kv.watch((c) => seen.push(c.key), { onError: (_e, key) => errors.push(key) });
    await kv.put("later", job("later"));
    broker.kvs.get("jobs-x")!.write("bad2", Uint8Array.of(1));
    assert.deepEqual(seen, ["good", "later"]);
    assert.deepEqual(errors, ["bad", "bad2"]);
    // Without onError the garbage is skipped, never thrown into the writer.
    const w2 = await kv.watch((c) => seen.push(c.key));
    broker.kvs.get("jobs-x")!.write("bad3", Uint8Array.of(2));
    await w.stop();
    await w2.stop();
    await t.close();
  });
});
