import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryTransport, openKv } from "@mergeloom/transport";
import { buckets } from "@mergeloom/proto/buckets";
import { MergeloomError } from "@mergeloom/proto/errors";
import { subjects } from "@mergeloom/proto/subjects";
import type { MergeTask } from "@mergeloom/proto/merge-task";
import type { TaskOutcome } from "@mergeloom/proto/records";
import { TaskRuntime, type TaskHandler } from "./task-runtime.js";

const task = (taskId: string): MergeTask => ({ jobId: "j", taskId, seed: 0, tensors: [] });

let transport: MemoryTransport;
let runtime: TaskRuntime;
afterEach(async () => {
  await runtime.stop({ graceful: false });
  await transport.close();
});

/** A runtime consuming merge tasks with `run`; returns the log lines. */
async function start(run: TaskHandler<MergeTask, TaskOutcome>["run"], failed: TaskHandler<MergeTask, TaskOutcome>["failed"] = () => ({})): Promise<string[]> {
  transport = new MemoryTransport();
  const lines: string[] = [];
  runtime = new TaskRuntime({ transport, name: "w", maxDeliver: 2, backoffMs: [5], log: (l) => lines.push(l) });
  const handler: TaskHandler<MergeTask, TaskOutcome> = {
    describe: (t) => `task ${t.taskId}`,
    detail: () => "x",
    label: (t) => `run ${t.taskId}`,
    rerun: "it",
    run,
    failed,
  };
  await runtime.consume({ subject: subjects.taskMerge, kind: "merge-task", outcomes: buckets.tasks, concurrency: 1, handler });
  return lines;
}

async function outcome(taskId: string): Promise<TaskOutcome> {
  const kv = await openKv(transport, buckets.tasks);
  for (let i = 0; i < 200; i++) {
    const e = await kv.get(buckets.tasks.key("j", taskId));
    if (e) return e.value;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no outcome for ${taskId}`);
}

const done = { outcome: {}, durationMs: 1 };

describe("TaskRuntime", () => {
  test("the outcome is recorded under the bucket's key with the worker, attempt and finish time", async () => {
    const lines = await start(async () => done);
    await transport.publishTask(subjects.taskMerge, "merge-task", task("t1"));
    const o = await outcome("t1");
    assert.equal(o.ok, true);
    assert.equal(o.worker, "w");
    assert.equal(o.attempt, 1);
    assert.ok(o.finishedAt > 0);
    assert.deepEqual(lines.slice(0, 1), ["task t1 started (attempt 1, x)"]);
  });

  test("a retryable error is retried, and the failure is recorded only after the last delivery", async () => {
    let runs = 0;
    const lines = await start(async () => {
      runs++;
      throw new MergeloomError("STORAGE_FAILED", "read x: reset", { retryable: true });
    });
    await transport.publishTask(subjects.taskMerge, "merge-task", task("t2"));
    const o = await outcome("t2");
    assert.equal(runs, 2);
    assert.equal(o.ok, false);
    assert.equal(o.attempt, 2);
    assert.equal(o.error?.code, "STORAGE_FAILED");
    assert.equal(o.error?.message, "run t2 on worker w (attempt 2/2): read x: reset");
    assert.ok(
      lines.some((l) => l.startsWith("retrying run t2 on worker w (attempt 1/2)")),
      lines.join("\n"),
    );
  });

  test("an error that is not retryable fails the task on its first delivery", async () => {
    let runs = 0;
    await start(async () => {
      runs++;
      throw new MergeloomError("CONFIG_INVALID", "bad");
    });
    await transport.publishTask(subjects.taskMerge, "merge-task", task("t3"));
    const o = await outcome("t3");
    assert.equal(o.attempt, 1);
    assert.equal(o.error?.retryable, false);
    assert.equal(runs, 1);
  });

  test("a task whose recorded outcome is ok is acked without running again", async () => {
    let runs = 0;
    await start(async () => (runs++, done));
    await transport.publishTask(subjects.taskMerge, "merge-task", task("t4"));
    await outcome("t4");
    await transport.publishTask(subjects.taskMerge, "merge-task", task("t4"));
    await transport.publishTask(subjects.taskMerge, "merge-task", task("t5"));
    await outcome("t5");
    assert.equal(runs, 2);
  });

  test("a graceful stop lets the task in flight finish and record its outcome", async () => {
    let release!: () => void;
    const started = new Promise<void>((r) => (release = r));
    await start(async () => {
      release();
      await new Promise((r) => setTimeout(r, 50));
      return done;
    });
    await transport.publishTask(subjects.taskMerge, "merge-task", task("t6"));
    await started;
    assert.equal(runtime.activeTasks, 1);
    const stopping = runtime.stop();
    assert.equal(runtime.draining, true);
    assert.equal(runtime.ready, false);
    await stopping;
    assert.equal(runtime.activeTasks, 0);
    assert.equal((await outcome("t6")).ok, true);
  });
});
