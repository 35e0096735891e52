import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { MemoryBroker, MemoryTransport } from "@mergeloom/transport";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import type { TaskOutcome, WorkerRecord } from "@mergeloom/proto/records";
import { headers as H, PROTOCOL_VERSION, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import { TransportDispatcher } from "@mergeloom/coordinator/dispatch";
import type { MergeExecutor } from "@mergeloom/engine/driver";
import { MergeWorker } from "@mergeloom/worker";

/** Finishes every task at once without touching storage. */
class InstantExecutor implements MergeExecutor {
  async run(task: MergeTask): Promise<MergeTaskResult> {
    return { taskId: task.taskId, tensors: [], bytesRead: 0, bytesWritten: 0, durationMs: 0 };
  }
  async close(): Promise<void> {}
}

const task = (jobId: string, taskId: string): MergeTask => ({ jobId, taskId, seed: 0, tensors: [] });

/** A worker registry entry as a live worker of this version writes it. */
const workerRecord = (name: string, over: Partial<WorkerRecord> = {}): WorkerRecord => ({
  workerId: name,
  name,
  host: "h",
  pid: 1,
  version: "0.0.0",
  protocol: PROTOCOL_VERSION,
  concurrency: 1,
  activeTasks: 0,
  status: "idle",
  methods: [],
  startedAt: 0,
  heartbeatAt: Date.now(),
  threads: 1,
  memoryBytes: 1,
  ...over,
});

async function outcome(t: MemoryTransport, key: string): Promise<TaskOutcome | undefined> {
  const kv = await openKv(t, buckets.tasks);
  for (let i = 0; i < 50; i++) {
    const e = await kv.get(key);
    if (e) return e.value;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

describe("merge worker refusals", () => {
  test("a task encoded by another protocol version is refused and recorded as that job's failure", async () => {
    const broker = new MemoryBroker();
    const wt = new MemoryTransport({ broker, role: "worker" });
    const logs: string[] = [];
    const w = new MergeWorker({ transport: wt, name: "w", executor: new InstantExecutor(), log: (l) => logs.push(l) });
    await w.start();
    const v2 = new Packr({ useRecords: false, mapsAsObjects: true }).pack({ v: 2, kind: "merge-task", body: task("j1", "t1") });
    broker.enqueue(subjects.taskMerge, v2, { [H.jobId]: "j1", [H.taskId]: "t1" });
    const o = await outcome(wt, buckets.tasks.key("j1", "t1"));
    assert.equal(o?.ok, false);
    assert.equal(o?.error?.code, "PROTOCOL_MISMATCH");
    assert.match(o!.error!.message, /speaks v2/);
    assert.ok(
      logs.some((l) => /refused a task message \(task t1 of job j1\)/.test(l)),
      logs.join("\n"),
    );
    await w.stop({ graceful: false });
  });

  test("malformed bytes are refused with MESSAGE_INVALID and the coordinator's job fails with the reason", async () => {
    const broker = new MemoryBroker();
    const w = new MergeWorker({ transport: new MemoryTransport({ broker, role: "worker" }), name: "w", executor: new InstantExecutor(), log: () => {} });
    await w.start();
    const coord = new MemoryTransport({ broker, role: "coordinator" });
    const d = new TransportDispatcher(coord, { threads: 1 });
    broker.enqueue(subjects.taskMerge, new Uint8Array([0xc1, 0x00, 0x01]), { [H.jobId]: "j2", [H.taskId]: "t0" });
    await assert.rejects(
      () => d.runTasks([task("j2", "t0")], () => {}),
      (err: Error) => /MESSAGE_INVALID|not valid msgpack|refused/.test(err.message),
    );
    await w.stop({ graceful: false });
  });

  test("a coordinator whose only workers speak another protocol version fails with both versions named", async () => {
    const broker = new MemoryBroker();
    const coord = new MemoryTransport({ broker, role: "coordinator" });
    const workers = await openKv(coord, buckets.workers);
    await workers.put("old", workerRecord("old", { version: "0.0.9", protocol: 2 }));
    const d = new TransportDispatcher(coord, { threads: 1, noWorkerWarnMs: 50 });
    await assert.rejects(() => d.runTasks([task("j3", "t0")], () => {}), /coordinator speaks protocol v1 but every connected worker speaks another \(old v2/);
  });

  test("a job whose only worker dies mid-run fails after --worker-wait-timeout counted from when it left, not from the start", async () => {
    const broker = new MemoryBroker();
    const coord = new MemoryTransport({ broker, role: "coordinator" });
    const workers = await openKv(coord, buckets.workers);
    await workers.put("w1", workerRecord("w1", { activeTasks: 1, status: "busy" }));
    const d = new TransportDispatcher(coord, { threads: 1, noWorkerWarnMs: 40, noWorkerTimeoutMs: 300 });
    // Nobody consumes the task: the worker "holds" it until its registry entry goes (its TTL, on NATS).
    const start = Date.now();
    let goneAt = 0;
    const gone = new Promise<void>((r) =>
      setTimeout(() => {
        goneAt = Date.now();
        void workers.delete("w1").then(r);
      }, 500),
    );
    await assert.rejects(
      () => d.runTasks([task("j6", "t0")], () => {}),
      (err: Error) => /job j6: no worker connected for 0 s; start one with/.test(err.message),
    );
    await gone;
    assert.ok(goneAt > start && Date.now() - goneAt >= 250, `failed ${Date.now() - goneAt} ms after the worker left; the timeout is 300 ms`);
  });

  test("a finished task delivered again is acked without running twice", async () => {
    const broker = new MemoryBroker();
    let runs = 0;
    const exec: MergeExecutor = {
      run: async (t) => (runs++, { taskId: t.taskId, tensors: [], bytesRead: 0, bytesWritten: 0, durationMs: 0 }),
      close: async () => {},
    };
    const w = new MergeWorker({ transport: new MemoryTransport({ broker, role: "worker" }), name: "w", executor: exec });
    await w.start();
    const d = new TransportDispatcher(new MemoryTransport({ broker, role: "coordinator" }), { threads: 1 });
    await d.runTasks([task("j4", "t0")], () => {});
    await d.runTasks([task("j4", "t0")], () => {}); // a restarted coordinator republishing
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(runs, 1);
    await w.stop({ graceful: false });
  });

  test("a task that every holder drops (crashed each time) fails the job, naming the task, instead of waiting forever", async () => {
    const broker = new MemoryBroker();
    // Stands for worker processes killed mid-task: they take the task and never ack, nack or heartbeat.
    const crashing = new MemoryTransport({ broker, role: "worker" });
    let taken = 0;
    const never = (signal: AbortSignal) => new Promise<void>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    await crashing.consume(subjects.taskMerge, "merge-task", (dl) => (taken++, never(dl.signal)), { ackWaitMs: 100, maxDeliver: 3 });
    const coord = new MemoryTransport({ broker, role: "coordinator" });
    const d = new TransportDispatcher(coord, { threads: 1 });
    await assert.rejects(
      () => d.runTasks([task("j5", "t7")], () => {}),
      (err: Error) => /job j5 failed: task t7 was given up after 3 deliveries: every worker that took it stopped or lost its lease/.test(err.message),
    );
    assert.equal(taken, 3);
    const o = await outcome(coord, buckets.tasks.key("j5", "t7"));
    assert.equal(o?.ok, false, "the failure is recorded for `mergeloom jobs`");
    await crashing.close();
  });
});
