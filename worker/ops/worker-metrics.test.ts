import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { WorkerMetrics } from "./worker-metrics.js";

/** Value of one sample line `name{labels} value` in Prometheus text output. */
function sample(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  assert.ok(line, `metric ${name} missing from:\n${text}`);
  return Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("WorkerMetrics", () => {
  test("counts done, failed and redelivered tasks and the bytes they moved", async () => {
    const m = new WorkerMetrics();
    m.taskStarted(1);
    m.taskFinished(1500, 1000, 400);
    m.taskStarted(3); // a redelivery
    m.taskFinished(250, 24, 8);
    m.taskStarted(2); // another redelivery that fails
    m.taskFailed();
    const text = await m.metricsText();
    assert.equal(sample(text, "mergeloom_worker_tasks_done_total"), 2);
    assert.equal(sample(text, "mergeloom_worker_tasks_failed_total"), 1);
    assert.equal(sample(text, "mergeloom_worker_tasks_redelivered_total"), 2);
    assert.equal(sample(text, "mergeloom_worker_bytes_read_total"), 1024);
    assert.equal(sample(text, "mergeloom_worker_bytes_written_total"), 408);
    assert.equal(sample(text, "mergeloom_worker_current_tasks"), 0);
  });

  test("the current-tasks gauge tracks tasks in flight", async () => {
    const m = new WorkerMetrics();
    m.taskStarted(1);
    m.taskStarted(1);
    assert.equal(sample(await m.metricsText(), "mergeloom_worker_current_tasks"), 2);
    m.taskFinished(10, 0, 0);
    assert.equal(sample(await m.metricsText(), "mergeloom_worker_current_tasks"), 1);
  });

  test("task durations land in the histogram in seconds", async () => {
    const m = new WorkerMetrics();
    m.taskStarted(1);
    m.taskFinished(1500, 0, 0); // 1.5 s: above the 1 s bucket, within 2.5 s
    m.taskStarted(1);
    m.taskFinished(40, 0, 0); // 0.04 s
    const text = await m.metricsText();
    assert.equal(sample(text, "mergeloom_worker_task_duration_seconds_count"), 2);
    assert.equal(sample(text, "mergeloom_worker_task_duration_seconds_sum"), 1.54);
    assert.match(text, /mergeloom_worker_task_duration_seconds_bucket\{le="0\.05"\} 1\n/);
    assert.match(text, /mergeloom_worker_task_duration_seconds_bucket\{le="1"\} 1\n/);
    assert.match(text, /mergeloom_worker_task_duration_seconds_bucket\{le="2\.5"\} 2\n/);
    assert.match(text, /# TYPE mergeloom_worker_task_duration_seconds histogram/);
  });

  test("two instances keep separate registries", async () => {
    const a = new WorkerMetrics();
    const b = new WorkerMetrics({ labels: { worker: "w-2" } });
    a.taskStarted(1);
    a.taskFinished(1, 0, 0);
    assert.equal(sample(await b.metricsText(), "mergeloom_worker_tasks_done_total"), 0);
    assert.match(await b.metricsText(), /mergeloom_worker_tasks_done_total\{worker="w-2"\} 0/);
  });
});
