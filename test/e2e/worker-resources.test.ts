/**
 * A worker is a long-lived process: its open descriptors and memory must not grow with the number
 * of jobs it has served, and several workers must run side by side on one host (one per GPU).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, readlink, rm } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectNatsTransport, type NatsTransport } from "@mergeloom/transport";
import type { TaskOutcome } from "@mergeloom/proto/records";
import { headers as H, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import type { KvBucket } from "@mergeloom/transport";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { Proc, startWorker, uniquePrefix } from "../harness/cluster.js";
import { createJobOutput, linearTask, waitOutcome, writeTinyModels } from "../harness/crafted-task.js";

let server: NatsServerHandle;
let root: string;
const procs: Proc[] = [];

before(async () => {
  server = await startNatsServer();
  root = await mkdtemp(join(tmpdir(), "mergeloom-resources-"));
});
after(async () => {
  await Promise.all(procs.map((p) => (p.child.exitCode === null ? p.kill("SIGKILL") : undefined)));
  await server?.stop();
  await rm(root, { recursive: true, force: true });
});

async function fds(pid: number): Promise<{ count: number; deleted: string[] }> {
  const dir = `/proc/${pid}/fd`;
  const names = await readdir(dir);
  const targets = await Promise.all(names.map((n) => readlink(join(dir, n)).catch(() => "")));
  return { count: names.length, deleted: targets.filter((t) => t.endsWith("(deleted)")) };
}

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}

describe("worker resources", () => {
  test("a worker's open descriptors and RSS stay flat across 200 jobs after warm-up, and deleted outputs are not held open", async (t) => {
    const prefix = uniquePrefix();
    const models = await writeTinyModels(root);
    const w = startWorker(server.url, { name: "longlived", prefix, threads: 1, concurrency: 4, maxDeliver: 1, extra: ["--storage-root", root] });
    procs.push(w);
    await w.waitFor((s) => /worker longlived ready/.test(s), 20_000, "worker ready");
    const coord: NatsTransport = await connectNatsTransport({ servers: server.url, prefix, role: "coordinator" });
    const kv: KvBucket<TaskOutcome> = await openKv(coord, buckets.tasks);
    const pid = w.child.pid!;
    // One job = one temporary output, one task, then the output is deleted (as after a cancel).
    const runJobs = async (from: number, to: number) => {
      const batch = 10;
      for (let i = from; i < to; i += batch) {
        const ids = Array.from({ length: Math.min(batch, to - i) }, (_, k) => `job${i + k}`);
        const outs = await Promise.all(ids.map((id) => createJobOutput(root, id)));
        await Promise.all(
          ids.map((id, k) =>
            coord.publishTask(subjects.taskMerge, "merge-task", linearTask(id, "t0", models, outs[k].shard), { [H.jobId]: id, [H.taskId]: "t0" }),
          ),
        );
        for (const id of ids) {
          const o = await waitOutcome(kv, buckets.tasks.key(id, "t0"));
          assert.equal(o.ok, true, JSON.stringify(o.error));
        }
        await Promise.all(outs.map((o) => rm(o.dir, { recursive: true, force: true })));
      }
    };
    try {
      // Warm-up: threads, caches, the JIT and V8's heap sizing settle (RSS then plateaus: about
      // +24 MiB over the first 300 jobs, +0.5 MiB over jobs 620-820 in a longer run of this test).
      await runJobs(0, 50);
      const fd0 = await fds(pid);
      const rss0 = await rssBytes(pid);
      await runJobs(50, 150);
      const rssMid = await rssBytes(pid);
      await runJobs(150, 250);
      const fd1 = await fds(pid);
      const rss1 = await rssBytes(pid);
      t.diagnostic(
        `fds ${fd0.count} -> ${fd1.count}, RSS ${(rss0 / 2 ** 20).toFixed(1)} -> ${(rssMid / 2 ** 20).toFixed(1)} -> ${(rss1 / 2 ** 20).toFixed(1)} MiB (after jobs 50, 150, 250)`,
      );
      assert.ok(fd1.count - fd0.count <= 4, `open descriptors grew from ${fd0.count} to ${fd1.count} over 200 jobs`);
      assert.deepEqual(fd1.deleted, [], "descriptors of deleted outputs are still open");
      assert.ok(rss1 - rss0 < 32 * 2 ** 20, `RSS grew from ${(rss0 / 2 ** 20).toFixed(1)} to ${(rss1 / 2 ** 20).toFixed(1)} MiB over 200 jobs`);
    } finally {
      await coord.close();
      await w.kill("SIGTERM");
    }
  });

  test("two workers start side by side on one host (health is served only when asked for)", async () => {
    const prefix = uniquePrefix();
    const mk = (name: string, extra: string[] = []) => {
      // Not the harness default `--http-port 0`: the flag is left out, as a user would.
      const p = new Proc(["worker", "--nats", server.url, "--nats-prefix", prefix, "--name", name, "--threads", "1", "--eval-concurrency", "0", ...extra]);
      procs.push(p);
      return p;
    };
    const a = mk("gpu0");
    const b = mk("gpu1");
    await a.waitFor((s) => /worker gpu0 ready/.test(s), 20_000, "first worker ready");
    await b.waitFor((s) => /worker gpu1 ready/.test(s), 20_000, "second worker ready");
    assert.equal(a.child.exitCode, null, a.err);
    assert.equal(b.child.exitCode, null, b.err);
    // Asked for, on a free port each: both serve /healthz.
    const c = mk("gpu2", ["--http-port", String(await freePortOf())]);
    await c.waitFor((s) => /on port \d+/.test(s), 20_000, "health port logged");
    const port = Number(/on port (\d+)/.exec(c.err)![1]);
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200);
    await Promise.all([a, b, c].map((p) => p.kill("SIGTERM")));
  });
});

async function freePortOf(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
