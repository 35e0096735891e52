/**
 * KV records that do not decode (written by another program, another version, or by hand) on a
 * real nats-server: `mergeloom jobs` lists everything else and names the bad record on its own
 * line; a coordinator resuming over a garbage job record starts the job over; a garbage task
 * outcome fails that job with the record named — no process crashes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Kvm, type KV } from "@nats-io/kv";
import { connectNatsTransport, type NatsTransport } from "@mergeloom/transport";
import type { JobRecord } from "@mergeloom/proto/records";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import { deriveJobId, loadConfig } from "@mergeloom/engine/job";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { startCoordinator, startWorker, uniquePrefix, type Proc } from "../harness/cluster.js";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";

let server: NatsServerHandle;
let dir: string;
const procs: Proc[] = [];
const GARBAGE = new Uint8Array([0x92, 0xc1, 0x00, 0xff]);

before(async () => {
  server = await startNatsServer();
  dir = await mkdtemp(join(tmpdir(), "mergeloom-garbage-"));
});
after(async () => {
  await Promise.all(procs.map((p) => (p.child.exitCode === null ? p.kill("SIGKILL") : undefined)));
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function open(prefix: string): Promise<{ t: NatsTransport; raw: (bucket: string) => Promise<KV> }> {
  const t = await connectNatsTransport({ servers: server.url, prefix, role: "coordinator" });
  await openKv(t, buckets.jobs);
  await openKv(t, buckets.tasks);
  return { t, raw: (bucket) => new Kvm(t.js).open(`${prefix}_${bucket}`) };
}

async function writeConfig(name: string): Promise<string> {
  const p = join(dir, `${name}.yml`);
  await writeFile(
    p,
    [
      `merge_method: linear`,
      "models:",
      `  - model: ${FIXTURES}/expert-add`,
      "    parameters: { weight: 1 }",
      `  - model: ${FIXTURES}/expert-sub`,
      "    parameters: { weight: 1 }",
      "dtype: float32",
      "",
    ].join("\n"),
  );
  return p;
}

describe("undecodable KV records", () => {
  test("mergeloom jobs lists the good jobs and reports the undecodable one on its own line", async () => {
    const prefix = uniquePrefix();
    const { t, raw } = await open(prefix);
    try {
      const good: JobRecord = {
        jobId: "goodjob",
        state: "done",
        createdAt: 1,
        updatedAt: 2,
        totalTasks: 3,
        doneTasks: 3,
        failedTasks: 0,
        outputDir: "/models/out",
      };
      await (await openKv(t, buckets.jobs)).put("goodjob", good);
      await (await raw(buckets.jobs.name)).put("badjob", GARBAGE);
      const r = await runCli(["jobs", "--nats", server.url, "--nats-prefix", prefix]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^goodjob\s+done\s+3\/3/m);
      assert.match(r.stdout, /^badjob\s+unreadable\s+skipped: .*kv mergeloom-jobs\/badjob/m);
      const j = await runCli(["jobs", "--json", "--nats", server.url, "--nats-prefix", prefix]);
      assert.equal(j.code, 0, j.stderr);
      const parsed = JSON.parse(j.stdout) as { jobs: JobRecord[]; skipped: Array<{ key: string }> };
      assert.deepEqual(
        parsed.jobs.map((x) => x.jobId),
        ["goodjob"],
      );
      assert.deepEqual(
        parsed.skipped.map((x) => x.key),
        ["badjob"],
      );
    } finally {
      await t.close();
    }
  });

  test("a coordinator whose job record is garbage starts the job over and completes it", async () => {
    const prefix = uniquePrefix();
    const cfg = await writeConfig("resume");
    const out = join(dir, "resumed");
    const jobId = deriveJobId(await loadConfig(cfg), 0, resolve(out));
    const { t, raw } = await open(prefix);
    try {
      await (await raw(buckets.jobs.name)).put(jobId, GARBAGE);
      const w = startWorker(server.url, { name: "g1", prefix });
      procs.push(w);
      const c = startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "0"]);
      procs.push(c);
      assert.equal(await c.exited, 0, c.err);
      assert.ok(
        c.events().some((e) => e.type === "warning" && /unreadable.*starting the job over/.test(String(e.message))),
        c.out,
      );
      await access(join(out, "model.safetensors"));
      await w.kill("SIGTERM");
    } finally {
      await t.close();
    }
  });

  test("a garbage task outcome fails that job with the record named, in one line", async () => {
    const prefix = uniquePrefix();
    const cfg = await writeConfig("garbage-outcome");
    const out = join(dir, "never");
    const { t, raw } = await open(prefix);
    try {
      // No worker: the job waits; the garbage outcome arrives while it does.
      const c = startCoordinator(server.url, prefix, cfg, out);
      procs.push(c);
      await c.waitFor((s) => /"type":"plan"/.test(s), 20_000, "plan event");
      const jobId = String(c.events().find((e) => e.type === "plan")!.jobId);
      await (await raw(buckets.tasks.name)).put(`${jobId}.t00000`, GARBAGE);
      assert.equal(await c.exited, 1, c.err);
      const lines = c.err.trim().split("\n");
      assert.equal(lines.length, 1, c.err);
      assert.match(lines[0], new RegExp(`^mergeloom: job ${jobId} failed: the outcome of task t00000 in mergeloom-tasks is unreadable`));
    } finally {
      await t.close();
    }
  });
});
