/**
 * One conformance suite for every Transport implementation: the in-memory transport must behave
 * like JetStream so the coordinator can run embedded. Timings are short (ack wait 600 ms) so the
 * whole suite takes seconds; assertions leave slack for a loaded two-core machine.
 */
import { describe, test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import type { JobRecord } from "@mergeloom/proto/records";
import { subjects } from "@mergeloom/proto/subjects";
import type { AbandonedTask, Delivery, KvChange, Received, Transport } from "@mergeloom/transport";
import { KvConflictError } from "@mergeloom/transport";

export type TransportFactory = () => Promise<Transport>;

const ACK_WAIT = 600;

function task(taskId: string): MergeTask {
  return { jobId: "job-1", taskId, seed: 1, tensors: [] };
}
function result(taskId: string): MergeTaskResult {
  return { taskId, tensors: [{ name: "w", byteLength: 8 }], bytesRead: 16, bytesWritten: 8, durationMs: 3 };
}
function job(doneTasks: number): JobRecord {
  return { jobId: "job-1", state: "running", createdAt: 1, updatedAt: 2, totalTasks: 4, doneTasks, failedTasks: 0, outputDir: "/out" };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

class Retryable extends MergeloomError {
  constructor(m: string) {
    super("MERGE_FAILED", m, { retryable: true });
  }
}
class Permanent extends MergeloomError {
  constructor(m: string) {
    super("SHAPE_MISMATCH", m, { retryable: false });
  }
}

export function describeTransportConformance(name: string, factory: TransportFactory): void {
  describe(`${name} transport conformance`, () => {
    const open: Transport[] = [];
    const make = async () => {
      const t = await factory();
      open.push(t);
      return t;
    };
    afterEach(async () => {
      await Promise.all(open.splice(0).map((t) => t.close()));
    });
    const Q = subjects.taskMerge;

    test("a task whose handler resolves is acked and never delivered again", async () => {
      const t = await make();
      const seen: Delivery<MergeTask>[] = [];
      await t.consume(Q, "merge-task", async (d) => void seen.push(d), { ackWaitMs: ACK_WAIT });
      await t.publishTask(Q, "merge-task", task("a"));
      await waitFor("first delivery", () => seen.length === 1);
      await sleep(ACK_WAIT * 2);
      assert.equal(seen.length, 1);
      assert.deepEqual(seen[0].body, task("a"));
      assert.equal(seen[0].attempt, 1);
      assert.equal(seen[0].subject, Q);
    });

    test("tasks published before any consumer exists are kept and delivered once one starts", async () => {
      const t = await make();
      await t.publishTask(Q, "merge-task", task("early"));
      const seen: string[] = [];
      await t.consume(Q, "merge-task", async (d) => void seen.push(d.body.taskId), { ackWaitMs: ACK_WAIT });
      await waitFor("delivery", () => seen.length === 1);
      assert.deepEqual(seen, ["early"]);
    });

    test("a task not acked within the ack wait is redelivered with the next attempt number and the stale handler is aborted", async () => {
      const t = await make();
      const attempts: number[] = [];
      let firstSignal: AbortSignal | undefined;
      await t.consume(
        Q,
        "merge-task",
        async (d) => {
          attempts.push(d.attempt);
          if (d.attempt === 1) {
            firstSignal = d.signal;
            await new Promise((_, reject) => d.signal.addEventListener("abort", () => reject(d.signal.reason)));
          }
        },
        { ackWaitMs: ACK_WAIT, concurrency: 2, maxDeliver: 5 },
      );
      const t0 = Date.now();
      await t.publishTask(Q, "merge-task", task("slow"));
      await waitFor("redelivery", () => attempts.length === 2);
      assert.ok(Date.now() - t0 >= ACK_WAIT - 50, "redelivered only after the ack wait");
      assert.deepEqual(attempts, [1, 2]);
      // The broker's redelivery and the stale lease's own timer are two clocks of the same length:
      // the abort may land a moment after the redelivery, never much later.
      await waitFor("the stale handler's signal aborts", () => firstSignal?.aborted === true, ACK_WAIT);
      await sleep(ACK_WAIT * 1.5);
      assert.deepEqual(attempts, [1, 2], "acked on attempt 2, no further delivery");
    });

    test("a retryable failure is retried up to maxDeliver attempts and then given up", async () => {
      const t = await make();
      const attempts: number[] = [];
      let lastMax = 0;
      await t.consume(
        Q,
        "merge-task",
        async (d) => {
          attempts.push(d.attempt);
          lastMax = d.maxDeliver;
          throw new Retryable("flaky");
        },
        { ackWaitMs: ACK_WAIT, maxDeliver: 3, backoffMs: [50] },
      );
      await t.publishTask(Q, "merge-task", task("flaky"));
      await waitFor("three attempts", () => attempts.length === 3);
      await sleep(ACK_WAIT * 1.5);
      assert.deepEqual(attempts, [1, 2, 3]);
      assert.equal(lastMax, 3);
    });

    test("a plain Error counts as retryable", async () => {
      const t = await make();
      const attempts: number[] = [];
      await t.consume(
        Q,
        "merge-task",
        async (d) => {
          attempts.push(d.attempt);
          if (d.attempt === 1) throw new Error("socket hang up");
        },
        { ackWaitMs: ACK_WAIT, backoffMs: [20] },
      );
      await t.publishTask(Q, "merge-task", task("x"));
      await waitFor("second attempt", () => attempts.length === 2);
      assert.deepEqual(attempts, [1, 2]);
    });

    test("a task whose every delivery lets its lease lapse is reported abandoned once, with its headers; finished and failed tasks are not", async () => {
      const t = await make();
      const abandoned: AbandonedTask[] = [];
      await t.watchAbandoned(Q, (a) => abandoned.push(a));
      const attempts: string[] = [];
      await t.consume(
        Q,
        "merge-task",
        async (d) => {
          attempts.push(`${d.body.taskId}#${d.attempt}`);
          if (d.body.taskId === "hangs") await new Promise((_, reject) => d.signal.addEventListener("abort", () => reject(d.signal.reason)));
          else if (d.body.taskId === "fails") throw new Permanent("bad input");
        },
        { ackWaitMs: ACK_WAIT, maxDeliver: 2, concurrency: 3 },
      );
      for (const id of ["hangs", "fails", "ok"]) await t.publishTask(Q, "merge-task", task(id), { "mergeloom-task": id });
      await waitFor("the abandoned report", () => abandoned.length === 1, ACK_WAIT * 8);
      assert.equal(abandoned[0].headers["mergeloom-task"], "hangs");
      assert.equal(abandoned[0].deliveries, 2);
      assert.deepEqual(
        attempts.filter((a) => a.startsWith("hangs")),
        ["hangs#1", "hangs#2"],
      );
      await abandoned[0].discard();
      await sleep(ACK_WAIT * 2);
      assert.equal(abandoned.length, 1, "reported once; the failed and the finished task are not abandoned");
    });

    test("a permanent failure terminates the task without redelivery", async () => {
      const t = await make();
      const seen: string[] = [];
      await t.consume(
        Q,
        "merge-task",
        async (d) => {
          seen.push(d.body.taskId);
          if (d.body.taskId === "bad") throw new Permanent("shapes differ");
        },
        { ackWaitMs: ACK_WAIT, backoffMs: [0] },
      );
      await t.publishTask(Q, "merge-task", task("bad"));
      await t.publishTask(Q, "merge-task", task("good"));
      await waitFor("both tasks", () => seen.includes("good"));
      await sleep(ACK_WAIT * 1.5);
      assert.deepEqual(
        seen.filter((s) => s === "bad"),
        ["bad"],
      );
    });

    test("a nak waits the configured backoff before the redelivery", async () => {
      const t = await make();
      const at: number[] = [];
      await t.consume(
        Q,
        "merge-task",
        async (d) => {
          at.push(Date.now());
          if (d.attempt < 3) throw new Retryable("later");
        },
        { ackWaitMs: 5000, maxDeliver: 5, backoffMs: [300, 600] },
      );
      await t.publishTask(Q, "merge-task", task("b"));
      await waitFor("third attempt", () => at.length === 3);
      const gap1 = at[1] - at[0];
      const gap2 = at[2] - at[1];
      assert.ok(gap1 >= 250 && gap1 < 2000, `first backoff ${gap1} ms, want about 300`);
      assert.ok(gap2 >= 550 && gap2 < 2500, `second backoff ${gap2} ms, want about 600`);
    });

    test("headers such as trace context arrive unchanged", async () => {
      const t = await make();
      const seen: Record<string, string>[] = [];
      await t.consume(Q, "merge-task", async (d) => void seen.push(d.headers), { ackWaitMs: ACK_WAIT });
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      await t.publishTask(Q, "merge-task", task("h"), { traceparent, "mergeloom-job": "job-1" });
      await waitFor("delivery", () => seen.length === 1);
      assert.equal(seen[0].traceparent, traceparent);
      assert.equal(seen[0]["mergeloom-job"], "job-1");
    });

    test("heartbeats keep a task that outlives the ack wait from being redelivered", async () => {
      const t = await make();
      const attempts: number[] = [];
      let aborted = false;
      await t.consume(
        Q,
        "merge-task",
        async (d) => {
          attempts.push(d.attempt);
          for (let i = 0; i < 8; i++) {
            await sleep(ACK_WAIT / 3);
            d.heartbeat();
          }
          aborted = d.signal.aborted;
        },
        { ackWaitMs: ACK_WAIT, concurrency: 2 },
      );
      await t.publishTask(Q, "merge-task", task("long"));
      await waitFor("handler finished", () => attempts.length >= 1);
      await sleep(ACK_WAIT * 3.5);
      assert.deepEqual(attempts, [1]);
      assert.equal(aborted, false);
    });

    test("competing handlers share the queue within the concurrency limit and each task runs once", async () => {
      const t = await make();
      let inFlight = 0;
      let peak = 0;
      const done: string[] = [];
      const handler = async (d: Delivery<MergeTask>) => {
        peak = Math.max(peak, ++inFlight);
        await sleep(100);
        inFlight--;
        done.push(d.body.taskId);
      };
      await t.consume(Q, "merge-task", handler, { ackWaitMs: ACK_WAIT, concurrency: 2, durable: "workers" });
      await t.consume(Q, "merge-task", handler, { ackWaitMs: ACK_WAIT, concurrency: 1, durable: "workers" });
      for (let i = 0; i < 6; i++) await t.publishTask(Q, "merge-task", task(`t${i}`));
      await waitFor("all tasks", () => done.length === 6);
      await sleep(200);
      assert.deepEqual([...done].sort(), ["t0", "t1", "t2", "t3", "t4", "t5"]);
      assert.ok(peak <= 3 && peak >= 2, `peak in flight ${peak}`);
    });

    test("a message of the wrong kind is terminated without reaching the handler", async () => {
      const t = await make();
      const seen: string[] = [];
      await t.consume(Q, "merge-task", async (d) => void seen.push(d.body.taskId), { ackWaitMs: ACK_WAIT });
      await t.publishTask(Q, "job", job(0));
      await t.publishTask(Q, "merge-task", task("after"));
      await waitFor("valid task", () => seen.length === 1);
      await sleep(ACK_WAIT * 1.5);
      assert.deepEqual(seen, ["after"]);
    });

    test("stopping a consumer with abort aborts running handlers and waits for them", async () => {
      const t = await make();
      let reason: unknown;
      let started = false;
      const sub = await t.consume(
        Q,
        "merge-task",
        async (d) => {
          started = true;
          await new Promise<void>((resolve) => d.signal.addEventListener("abort", () => ((reason = d.signal.reason), resolve())));
        },
        { ackWaitMs: 5000 },
      );
      await t.publishTask(Q, "merge-task", task("s"));
      await waitFor("start", () => started);
      await sub.stop({ abort: true });
      assert.ok(reason instanceof MergeloomError, "abort reason is a typed error");
    });

    test("results published while no one listens are replayed to a subscriber that asks for all", async () => {
      const t = await make();
      const jobSubject = subjects.result("job-1");
      await t.publish(jobSubject, { kind: "merge-result", body: result("a") }, { traceparent: "00-1-2-01" });
      await t.publish(subjects.result("job-2"), { kind: "merge-result", body: result("other") });
      await t.publish(jobSubject, {
        kind: "error-report",
        body: { jobId: "job-1", taskId: "b", attempt: 3, final: true, error: { code: "MERGE_FAILED", message: "boom", retryable: true } },
      });
      const all: Received[] = [];
      const fresh: Received[] = [];
      await t.subscribe(jobSubject, (m) => void all.push(m), { deliver: "all" });
      await t.subscribe(subjects.resultAll, (m) => void fresh.push(m), { deliver: "new" });
      await waitFor("replay", () => all.length === 2);
      await t.publish(jobSubject, { kind: "merge-result", body: result("c") });
      await waitFor("live message", () => all.length === 3 && fresh.length === 1);
      assert.deepEqual(
        all.map((m) => m.message.kind),
        ["merge-result", "error-report", "merge-result"],
      );
      assert.deepEqual(all[0].message.body, result("a"));
      assert.equal(all[0].headers.traceparent, "00-1-2-01");
      assert.ok(all[0].seq < all[1].seq && all[1].seq < all[2].seq);
      assert.equal(fresh[0].message.kind === "merge-result" && fresh[0].message.body.taskId, "c");
    });

    test("kv create and update are compare-and-set on the revision", async () => {
      const t = await make();
      const kv = await t.kv("jobs", "job");
      const r1 = await kv.create("job-1", job(0));
      await assert.rejects(kv.create("job-1", job(1)), (e) => e instanceof KvConflictError && e.retryable && /job-1/.test(e.message));
      const r2 = await kv.update("job-1", job(1), r1);
      assert.ok(r2 > r1);
      await assert.rejects(kv.update("job-1", job(2), r1), KvConflictError);
      const cur = await kv.get("job-1");
      assert.equal(cur?.revision, r2);
      assert.equal(cur?.value.doneTasks, 1);
      const r3 = await kv.put("job-2", job(5));
      assert.ok(r3 > r2);
      assert.deepEqual((await kv.keys()).sort(), ["job-1", "job-2"]);
      await kv.delete("job-1");
      assert.equal(await kv.get("job-1"), null);
      assert.deepEqual(await kv.keys(), ["job-2"]);
      await kv.create("job-1", job(0));
      assert.equal((await kv.get("job-1"))?.value.doneTasks, 0);
      assert.equal(await kv.get("missing"), null);
    });

    test("kv watch reports current values and then each change", async () => {
      const t = await make();
      const kv = await t.kv("jobs", "job");
      await kv.put("a", job(1));
      const changes: KvChange<JobRecord>[] = [];
      const w = await kv.watch((c) => void changes.push(c));
      await waitFor("initial value", () => changes.length === 1);
      await kv.put("b", job(2));
      await kv.delete("a");
      await waitFor("two changes", () => changes.length === 3);
      await w.stop();
      assert.deepEqual(
        changes.map((c) => [c.key, c.op, c.value?.doneTasks ?? null]),
        [
          ["a", "put", 1],
          ["b", "put", 2],
          ["a", "delete", null],
        ],
      );
    });

    test("kv entries expire after the bucket ttl", async () => {
      const t = await make();
      const kv = await t.kv("workers", "job", { ttlMs: 1000 });
      await kv.put("w1", job(0));
      assert.equal((await kv.get("w1"))?.value.jobId, "job-1");
      const end = Date.now() + 4000;
      let gone = false;
      while (Date.now() < end && !gone) {
        await sleep(100);
        gone = (await kv.get("w1")) === null;
      }
      assert.ok(gone, "entry expired within 4 s of a 1 s ttl");
      assert.deepEqual(await kv.keys(), []);
    });

    test("kv rejects keys NATS would reject", async () => {
      const t = await make();
      const kv = await t.kv("jobs", "job");
      await assert.rejects(kv.put("bad key", job(0)), (e) => e instanceof MergeloomError && e.code === "TRANSPORT_FAILED" && /invalid key/.test(e.message));
    });

    test("the object store round-trips a streamed multi-chunk object", async () => {
      const t = await make();
      const store = await t.objects("outputs");
      const bytes = randomBytes(300_000);
      async function* chunks() {
        for (let i = 0; i < bytes.length; i += 70_000) yield new Uint8Array(bytes.subarray(i, i + 70_000));
      }
      const info = await store.put("job-1/shard-0", chunks());
      assert.equal(info.size, bytes.length);
      assert.equal((await store.info("job-1/shard-0"))?.size, bytes.length);
      const stream = await store.get("job-1/shard-0");
      assert.ok(stream);
      const parts: Uint8Array[] = [];
      for await (const c of stream) parts.push(c);
      assert.ok(Buffer.concat(parts).equals(bytes));
      assert.ok(Buffer.from((await store.getBytes("job-1/shard-0"))!).equals(bytes));
      await store.put("small", new Uint8Array([1, 2, 3]));
      assert.deepEqual([...(await store.getBytes("small"))!], [1, 2, 3]);
      assert.equal(await store.get("absent"), null);
      await store.delete("small");
      assert.equal(await store.info("small"), null);
    });

    test("a closed transport refuses new work", async () => {
      const t = await make();
      await t.close();
      await assert.rejects(t.publishTask(Q, "merge-task", task("z")), (e) => e instanceof MergeloomError && e.code === "TRANSPORT_FAILED");
    });
  });
}
