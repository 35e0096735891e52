/**
 * Hostile task messages and KV records against a real nats-server and a real worker process: a
 * message published by hand (anyone with publish rights on the task subject) must never make a
 * worker write a byte outside the temporary output directory of its own job, nor crash it. Every
 * refused task fails with the reason in its outcome; afterwards the same worker still merges a
 * good job.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { connectNatsTransport, type NatsTransport } from "@mergeloom/transport";
import { encodeMessage } from "@mergeloom/proto/codec";
import type { TaskOutcome } from "@mergeloom/proto/records";
import { headers as H, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import type { KvBucket } from "@mergeloom/transport";
import { JOB_MARKER_FILE, writeJobMarker } from "@mergeloom/engine/output";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { startWorker, uniquePrefix, type Proc } from "../harness/cluster.js";
import { createJobOutput, hashTree, linearTask, waitOutcome, writeTinyModels, type TinyModels } from "../harness/crafted-task.js";

let server: NatsServerHandle;
let coord: NatsTransport;
let worker: Proc;
let tasksKv: KvBucket<TaskOutcome>;
let jail: string;
let outside: string;
let models: TinyModels;
let prefix: string;
let n = 0;
const jobId = () => `crafted${n++}`;

before(async () => {
  server = await startNatsServer();
  prefix = uniquePrefix();
  jail = await mkdtemp(join(tmpdir(), "mergeloom-jail-"));
  outside = await mkdtemp(join(tmpdir(), "mergeloom-outside-"));
  await writeFile(join(outside, "precious.txt"), "do not touch\n");
  await writeFile(join(jail, "notes.txt"), "a user's file inside the storage root\n");
  models = await writeTinyModels(jail);
  coord = await connectNatsTransport({ servers: server.url, prefix, role: "coordinator" });
  tasksKv = await openKv(coord, buckets.tasks);
  worker = startWorker(server.url, { name: "target", prefix, maxDeliver: 1, extra: ["--storage-root", jail] });
  await worker.waitFor((s) => /worker target ready/.test(s), 20_000, "worker ready");
});
after(async () => {
  if (worker && worker.child.exitCode === null) await worker.kill("SIGKILL");
  await coord?.close();
  await server?.stop();
  await rm(jail, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function publish(task: ReturnType<typeof linearTask>): Promise<TaskOutcome> {
  await coord.publishTask(subjects.taskMerge, "merge-task", task, { [H.jobId]: task.jobId, [H.taskId]: task.taskId });
  return waitOutcome(tasksKv, buckets.tasks.key(task.jobId, task.taskId));
}

/** Runs `fn`, then asserts nothing under the jail or the outside directory changed, except `allowed`. */
async function unchanged(fn: () => Promise<void>, allowed: (p: string) => boolean = () => false): Promise<void> {
  const before = [await hashTree(jail, allowed), await hashTree(outside)];
  await fn();
  const after = [await hashTree(jail, allowed), await hashTree(outside)];
  assert.deepEqual(after[0], before[0], "a file under the storage root changed");
  assert.deepEqual(after[1], before[1], "a file outside the storage root changed");
  assert.equal(worker.child.exitCode, null, `worker exited:\n${worker.err}`);
}

async function refused(task: ReturnType<typeof linearTask>, reason: RegExp): Promise<void> {
  const o = await publish(task);
  assert.equal(o.ok, false, `task ${task.taskId} of ${task.jobId} was not refused`);
  assert.match(o.error!.message, reason);
}

describe("crafted task messages never write outside the job's temporary output", () => {
  test("a dest over a user's file inside the storage root is refused", async () => {
    const j = jobId();
    await unchanged(() => refused(linearTask(j, "t0", models, join(jail, "notes.txt")), /not a temporary output directory/));
  });

  test("a dest over an input checkpoint is refused", async () => {
    const j = jobId();
    await unchanged(() => refused(linearTask(j, "t0", models, models.a), /not a temporary output directory/));
  });

  test("an absolute dest outside every storage root is refused", async () => {
    const j = jobId();
    await unchanged(() => refused(linearTask(j, "t0", models, join(outside, "precious.txt")), /outside the storage roots/));
  });

  test("a dest with '..' climbing out of a real job output is refused", async () => {
    const j = jobId();
    const { dir } = await createJobOutput(jail, j);
    await unchanged(
      () => refused(linearTask(j, "t0", models, `${dir}/../models/a/model.safetensors`), /outside the storage roots|'\.\.'/),
      (p) => p.startsWith(dir),
    );
  });

  test("a shard that is a symlink to an input, inside the job's own output, is refused", async () => {
    const j = jobId();
    const { dir } = await createJobOutput(jail, j);
    const evil = join(dir, "model-00002-of-00002.safetensors");
    await symlink(models.b, evil);
    await unchanged(
      () => refused(linearTask(j, "t0", models, evil), /symlink/),
      (p) => p.startsWith(dir),
    );
  });

  test("a shard that is a hard link to an input is refused", async () => {
    const j = jobId();
    const { dir } = await createJobOutput(jail, j);
    const evil = join(dir, "model-00002-of-00002.safetensors");
    await link(models.b, evil);
    await unchanged(
      () => refused(linearTask(j, "t0", models, evil), /hard links/),
      (p) => p.startsWith(dir),
    );
  });

  test("a temporary output directory that is a symlink (pointing out of the roots) is refused", async () => {
    const j = jobId();
    await mkdir(join(outside, "fake.mergeloom-tmp-x"));
    await writeJobMarker(join(outside, "fake.mergeloom-tmp-x"), j);
    await writeFile(join(outside, "fake.mergeloom-tmp-x", "s.safetensors"), Buffer.alloc(64));
    const linkDir = join(jail, "link.mergeloom-tmp-y");
    await symlink(join(outside, "fake.mergeloom-tmp-x"), linkDir);
    await unchanged(() => refused(linearTask(j, "t0", models, join(linkDir, "s.safetensors")), /outside the storage roots|symlink/));
  });

  test("a job whose temporary output directory does not exist is refused", async () => {
    const j = jobId();
    await unchanged(() => refused(linearTask(j, "t0", models, join(jail, `out-${j}.mergeloom-tmp-gone`, "model.safetensors")), /does not exist/));
  });

  test("a temporary output directory without the job marker is refused", async () => {
    const j = jobId();
    const { dir, shard } = await createJobOutput(jail, j, { marker: false });
    await unchanged(
      () => refused(linearTask(j, "t0", models, shard), new RegExp(`no \\${JOB_MARKER_FILE} marker`)),
      (p) => p.startsWith(dir),
    );
    assert.deepEqual(await readFile(shard), Buffer.alloc(64), "the unmarked shard was written");
  });

  test("another job's temporary output directory is refused", async () => {
    const mine = jobId();
    const theirs = jobId();
    const { dir, shard } = await createJobOutput(jail, theirs);
    await unchanged(
      () => refused(linearTask(mine, "t0", models, shard), /belongs to another job/),
      (p) => p.startsWith(dir),
    );
    assert.deepEqual(await readFile(shard), Buffer.alloc(64));
  });

  test("garbage msgpack and schema-invalid tasks are refused and recorded as their job's failure", async () => {
    const j = jobId();
    const h = natsHeaders();
    h.set(H.jobId, j);
    h.set(H.taskId, "t0");
    await unchanged(async () => {
      await coord.js.publish(`${prefix}.${subjects.taskMerge}`, new Uint8Array([0xc1, 0xff, 0x00, 0x13, 0x37]), { headers: h });
      const o = await waitOutcome(tasksKv, buckets.tasks.key(j, "t0"));
      assert.equal(o.ok, false);
      assert.match(o.error!.message, /not valid msgpack|field/);
      const h2 = natsHeaders();
      h2.set(H.jobId, j);
      h2.set(H.taskId, "t1");
      const bad = encodeMessage("merge-task", { jobId: j, taskId: "t1", seed: 0, tensors: [{ name: 1 }] } as never);
      await coord.js.publish(`${prefix}.${subjects.taskMerge}`, bad, { headers: h2 });
      const o2 = await waitOutcome(tasksKv, buckets.tasks.key(j, "t1"));
      assert.equal(o2.ok, false);
      assert.match(o2.error!.message, /field body\.tensors/);
      // No headers at all: nothing to record, the worker only logs it.
      await coord.js.publish(`${prefix}.${subjects.taskMerge}`, new Uint8Array([1, 2, 3]));
    });
  });

  test("garbage job and task records fail that task with the record named, not the worker", async () => {
    const kvm = new Kvm(coord.js);
    const jobs = await kvm.open(`${prefix}_${buckets.jobs.name}`);
    const tasks = await kvm.open(`${prefix}_${buckets.tasks.name}`);
    const j1 = jobId();
    const out1 = await createJobOutput(jail, j1);
    await jobs.put(j1, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    const j2 = jobId();
    const out2 = await createJobOutput(jail, j2);
    await tasks.put(buckets.tasks.key(j2, "t0"), new TextEncoder().encode("{not msgpack"));
    await unchanged(
      async () => {
        await refused(linearTask(j1, "t0", models, out1.shard), new RegExp(`record ${buckets.jobs.name}/${j1} is unreadable`));
        await refused(linearTask(j2, "t0", models, out2.shard), new RegExp(`record ${buckets.tasks.name}/${j2}\\.t0 is unreadable`));
      },
      (p) => p.startsWith(out1.dir) || p.startsWith(out2.dir),
    );
    assert.deepEqual(await readFile(out1.shard), Buffer.alloc(64));
  });

  test("after all of that the same worker merges a good job into its temporary output", async () => {
    const j = jobId();
    const { dir, shard } = await createJobOutput(jail, j);
    await unchanged(
      async () => {
        const o = await publish(linearTask(j, "t0", models, shard));
        assert.equal(o.ok, true, JSON.stringify(o.error));
      },
      (p) => p.startsWith(dir),
    );
    // Independent expectation: normalized linear mean of the two seeded ramps (writeFakeCheckpoint).
    const got = new Float32Array((await readFile(shard)).buffer.slice(0));
    for (let i = 0; i < 16; i++) {
      const a = Math.fround(Math.sin(1 * 7.1 + i * 0.37) * 0.05);
      const b = Math.fround(Math.sin(2 * 7.1 + i * 0.37) * 0.05);
      assert.ok(Math.abs(got[i] - (a + b) / 2) < 1e-7, `element ${i}: ${got[i]} vs ${(a + b) / 2}`);
    }
    assert.equal(worker.child.exitCode, null);
  });
});
