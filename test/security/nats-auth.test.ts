/**
 * The shipped NATS account config (deploy/nats/mergeloom-auth.conf) on a real nats-server: a
 * worker user cannot publish tasks or write job records, a coordinator and a worker run a job end
 * to end under it, and credentials given in the URL (user:password, token) are used and never
 * printed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { encodeMessage } from "@mergeloom/proto/codec";
import { streams, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { Proc } from "../harness/cluster.js";
import { runCli } from "../harness/run-cli.js";
import { REPO_ROOT } from "../harness/repo-root.js";

const CONF = join(REPO_ROOT, "deploy", "nats", "mergeloom-auth.conf");
const COORD_PW = "c00rd-S3cret-pw";
const WORKER_PW = "w0rker-S3cret-pw";
let server: NatsServerHandle;
let dir: string;
const procs: Proc[] = [];
const host = () => `127.0.0.1:${server.port}`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-auth-"));
  server = await startNatsServer({ configFile: CONF, env: { MERGELOOM_COORDINATOR_PASSWORD: COORD_PW, MERGELOOM_WORKER_PASSWORD: WORKER_PW } });
});
after(async () => {
  await Promise.all(procs.map((p) => (p.child.exitCode === null ? p.kill("SIGKILL") : undefined)));
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function taskCount(nc: NatsConnection): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(streams.tasks)).state.messages;
}

describe("the shipped NATS account config", () => {
  test("a coordinator and a worker run a merge end to end under it, with credentials in the URL that never appear in their output", async () => {
    const worker = new Proc([
      "worker",
      "--nats",
      `nats://worker:${WORKER_PW}@${host()}`,
      "--name",
      "acl-worker",
      "--threads",
      "1",
      "--storage-root",
      REPO_ROOT,
      dir,
    ]);
    procs.push(worker);
    await worker.waitFor((s) => /worker acl-worker ready/.test(s), 20_000, "worker ready");
    const out = join(dir, "merged");
    const r = await runCli([
      "merge",
      "examples/linear-arith.yml",
      "-o",
      out,
      "--nats",
      `nats://coordinator:${COORD_PW}@${host()}`,
      "--worker-wait-timeout",
      "20",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    await access(join(out, "model.safetensors"));
    const jobs = await runCli(["jobs", "--nats", `nats://coordinator:${COORD_PW}@${host()}`]);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.match(jobs.stdout, /done\s+\d+\/\d+/);
    await worker.kill("SIGTERM");
    for (const text of [r.stdout, r.stderr, jobs.stdout, jobs.stderr, worker.out, worker.err]) {
      assert.ok(!text.includes(COORD_PW) && !text.includes(WORKER_PW), `a password was printed:\n${text}`);
    }
  });

  test("the worker user can neither publish a task nor write a job record", async () => {
    const coord = await connect({ servers: host(), user: "coordinator", pass: COORD_PW });
    const w = await connect({ servers: host(), user: "worker", pass: WORKER_PW });
    try {
      const before = await taskCount(coord);
      const task = encodeMessage("merge-task", { jobId: "evil", taskId: "t0", seed: 0, tensors: [] });
      // Through JetStream (the server refuses the publish: no ack ever comes) and as a plain publish.
      await assert.rejects(() => jetstream(w, { timeout: 1500 }).publish(subjects.taskMerge, task), /permission|timeout|no responders/i);
      w.publish(subjects.taskMerge, task);
      w.publish(`$KV.${buckets.jobs.name}.evil`, task);
      await w.flush();
      assert.equal(await taskCount(coord), before, "a task published by the worker user reached the queue");
      const jsm = await jetstreamManager(coord);
      const jobsStream = await jsm.streams.info(`KV_${buckets.jobs.name}`).catch(() => null);
      const evil = jobsStream
        ? await jsm.streams.getMessage(`KV_${buckets.jobs.name}`, { last_by_subj: `$KV.${buckets.jobs.name}.evil` }).catch(() => null)
        : null;
      assert.equal(evil, null, "the worker user wrote a job record");
      // The coordinator user may publish tasks (the control).
      await jetstream(coord).publish(subjects.taskMerge, task);
      assert.equal(await taskCount(coord), before + 1);
    } finally {
      await w.close();
      await coord.close();
    }
  });

  test("a coordinator waiting for workers prints the URL with the password masked", async () => {
    const r = await runCli([
      "merge",
      "examples/linear-arith.yml",
      "-o",
      join(dir, "no-workers"),
      "--nats",
      `nats://coordinator:${COORD_PW}@${host()}`,
      "--worker-wait-timeout",
      "1",
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no worker connected for 1 s; start one with: mergeloom worker --nats nats:\/\/coordinator:\*\*\*@127\.0\.0\.1/);
    assert.ok(!r.stderr.includes(COORD_PW) && !r.stdout.includes(COORD_PW), r.stderr);
  });

  test("a wrong password fails in one line that does not print it", async () => {
    const r = await runCli(["jobs", "--nats", `nats://coordinator:Wr0ngSecretValue@${host()}`], { timeoutMs: 30_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^mergeloom: connect to nats nats:\/\/127\.0\.0\.1:\d+: .*(Authorization|auth)/im);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(!r.stderr.includes("Wr0ngSecretValue") && !r.stdout.includes("Wr0ngSecretValue"), r.stderr);
  });
});

describe("token credentials in the URL", () => {
  let tokenServer: NatsServerHandle;
  before(async () => {
    const conf = join(dir, "token.conf");
    await writeFile(conf, "authorization { token: $MERGELOOM_TEST_TOKEN }\n");
    tokenServer = await startNatsServer({ configFile: conf, env: { MERGELOOM_TEST_TOKEN: "t0ken-S3cret-value" } });
  });
  after(async () => tokenServer?.stop());

  test("nats://TOKEN@host authenticates with the token, and a wrong token is not printed", async () => {
    const ok = await runCli(["jobs", "--nats", `nats://t0ken-S3cret-value@127.0.0.1:${tokenServer.port}`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /worker\(s\) connected/);
    const bad = await runCli(["jobs", "--nats", `nats://n0t-the-t0ken@127.0.0.1:${tokenServer.port}`], { timeoutMs: 30_000 });
    assert.notEqual(bad.code, 0);
    assert.ok(!bad.stderr.includes("n0t-the-t0ken"), bad.stderr);
    assert.match(bad.stderr, /^mergeloom: connect to nats/);
  });
});
