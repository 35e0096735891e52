// Temporary: serial vs pipelined costs of the NATS operations on the dispatch path.
import { connectNatsTransport } from "../proto/nats-transport.js";
import { startNatsServer } from "../test/harness/nats-server.js";
import { makeTinyTasks } from "./nats-bench-harness.js";
import { subjects } from "../proto/subjects.js";

const server = await startNatsServer();
const t = await connectNatsTransport({ servers: server.url, prefix: "ops", role: "coordinator" });
const N = 3000;
const tasks = makeTinyTasks("j", N);
const rate = (label: string, t0: number) => console.log(`${label}: ${(N / ((performance.now() - t0) / 1000)).toFixed(0)}/s`);
let t0 = performance.now();
for (const x of tasks) await t.publishTask(subjects.taskMerge, "merge-task", x, { a: "1" });
rate("publishTask serial", t0);
t0 = performance.now();
const inflight = new Set<Promise<void>>();
for (const x of tasks) {
  const p = t.publishTask(subjects.taskMerge, "merge-task", x, { a: "1" }).then(() => void inflight.delete(p));
  inflight.add(p);
  if (inflight.size >= 256) await Promise.race(inflight);
}
await Promise.all(inflight);
rate("publishTask window 256", t0);
// consume via next() one by one
const c = await t.js.consumers.get("ops_MERGELOOM_TASKS", (await t.jsm.consumers.add("ops_MERGELOOM_TASKS", { durable_name: "x", ack_policy: "explicit" as never, filter_subject: "ops.mergeloom.v1.task.merge" })).name);
t0 = performance.now();
for (let i = 0; i < N; i++) { const m = await c.next({ expires: 1000 }); m!.ack(); }
rate("consumer.next serial + ack", t0);
t0 = performance.now();
let got = 0;
const it = await c.consume({ max_messages: 256 });
for await (const m of it) { m.ack(); if (++got === N) break; }
rate("consumer.consume + ack", t0);
const kv = await t.kv("bench-kv", "task-outcome");
const o = { jobId: "j", taskId: "t", ok: true, result: { taskId: "t", tensors: [{ name: "x", byteLength: 8192 }], bytesRead: 0, bytesWritten: 0, durationMs: 0 }, worker: "w", attempt: 1, finishedAt: Date.now() };
t0 = performance.now();
for (let i = 0; i < N; i++) await kv.put(`j.t${i}`, o);
rate("kv.put serial", t0);
t0 = performance.now();
for (let i = 0; i < N; i++) await kv.get(`j.t${i}`);
rate("kv.get serial (hit)", t0);
t0 = performance.now();
for (let i = 0; i < N; i++) await kv.get(`k.t${i}`);
rate("kv.get serial (miss)", t0);
t0 = performance.now();
await Promise.all(Array.from({ length: N }, (_, i) => kv.put(`j.u${i}`, o)));
rate("kv.put all parallel", t0);
await t.close();
await server.stop();
process.exit(0);
