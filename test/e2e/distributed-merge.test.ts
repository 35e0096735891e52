/**
 * Distributed merges with a real nats-server and real worker and coordinator processes: the output
 * equals the embedded mode's bit for bit, and killing a worker, the coordinator or the server
 * mid-job costs retries, never the run.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type NatsServerHandle } from "../harness/nats-server.js";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";
import { startCoordinator, startWorker, uniquePrefix, type Proc, natsClusterFixture } from "../harness/cluster.js";
import { startRangeServer } from "../harness/http-range-server.js";

let server: NatsServerHandle;
let dir: string;
const { track } = natsClusterFixture("mergeloom-dist-", (s, d) => ((server = s), (dir = d)));

const experts = ["expert-add", "expert-sub", "expert-mul", "expert-rev"];
function configYaml(method: string, root = FIXTURES): string {
  return [
    `merge_method: ${method}`,
    `base_model: ${root}/base`,
    "models:",
    ...experts.flatMap((e) => [`  - model: ${root}/${e}`, "    parameters: { weight: 0.5, density: 0.6 }"]),
    "dtype: float32",
    "out_dtype: bfloat16",
    "",
  ].join("\n");
}
async function writeConfig(name: string, yaml: string): Promise<string> {
  const p = join(dir, `${name}.yml`);
  await writeFile(p, yaml);
  return p;
}
const SHARD = "model.safetensors";
async function shardBytes(out: string): Promise<Buffer> {
  return readFile(join(out, SHARD));
}
/** The embedded (no NATS) output of a config, the reference every distributed run must equal. */
async function embedded(config: string, name: string): Promise<Buffer> {
  const out = join(dir, `embedded-${name}`);
  const r = await runCli(["merge", config, "-o", out, "--random-seed", "42"]);
  assert.equal(r.code, 0, r.stderr);
  return shardBytes(out);
}
async function stopAll(ps: Proc[]): Promise<void> {
  await Promise.all(ps.map((p) => p.kill("SIGTERM")));
}
const startedLines = (p: Proc, taskId: string) => (p.err.match(new RegExp(`task ${taskId} of job \\S+ started`, "g")) ?? []).length;

describe("distributed merges over NATS JetStream", () => {
  for (const [method, n] of [
    ["ties", 1],
    ["ties", 2],
    ["dare_ties", 4],
  ] as const) {
    test(`${n} worker process${n > 1 ? "es" : ""} produce the embedded mode's output bit for bit (${method}, seed 42)`, async () => {
      const cfg = await writeConfig(`${method}-${n}`, configYaml(method));
      const ref = await embedded(cfg, `${method}-${n}`);
      const prefix = uniquePrefix();
      // A short per-task delay and every worker ready before the job starts, so tasks do spread.
      const workers = Array.from({ length: n }, (_, i) => track(startWorker(server.url, { name: `w${i + 1}`, prefix, concurrency: 2, delayMs: 200 })));
      await Promise.all(workers.map((w) => w.waitFor((s) => s.includes("ready"), 15_000, "worker ready")));
      const out = join(dir, `nats-${method}-${n}`);
      const c = track(startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "42"]));
      assert.equal(await c.exited, 0, c.err);
      assert.ok((await shardBytes(out)).equals(ref), "distributed output differs from embedded output");
      const byWorker = new Set(
        c
          .events()
          .filter((e) => e.type === "task")
          .map((e) => e.worker),
      );
      if (n > 1) assert.ok(byWorker.size >= 2, `expected tasks spread over workers, got ${[...byWorker]}`);
      await stopAll(workers);
    });
  }

  test("a worker killed with SIGKILL mid-task costs a redelivery and the output is identical", async () => {
    const cfg = await writeConfig("kill-worker", configYaml("ties"));
    const ref = await embedded(cfg, "kill-worker");
    const prefix = uniquePrefix();
    const victim = track(startWorker(server.url, { name: "victim", prefix, delayMs: 1500, ackWaitS: 2 }));
    await victim.waitFor((s) => s.includes("ready"), 15_000, "victim ready");
    const out = join(dir, "nats-kill-worker");
    const c = track(startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "42"]));
    await victim.waitFor((s) => / started \(attempt 1/.test(s), 20_000, "a task on the victim");
    const taskId = /task (t\d+) of job \S+ started/.exec(victim.err)![1];
    const survivor = track(startWorker(server.url, { name: "survivor", prefix, delayMs: 200, ackWaitS: 2 }));
    await victim.kill("SIGKILL");
    assert.equal(await c.exited, 0, c.err);
    assert.ok((await shardBytes(out)).equals(ref));
    assert.match(survivor.err, new RegExp(`task ${taskId} of job \\S+ started \\(attempt [2-9]`), "the killed task must be redelivered");
    await stopAll([survivor]);
  });

  test("a coordinator killed mid-job resumes from KV state and redoes only unfinished tasks", async () => {
    const cfg = await writeConfig("kill-coord", configYaml("ties"));
    const ref = await embedded(cfg, "kill-coord");
    const prefix = uniquePrefix();
    const workers = [1, 2].map((i) => track(startWorker(server.url, { name: `r${i}`, prefix, delayMs: 700 })));
    const out = join(dir, "nats-kill-coord");
    const first = track(startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "42"]));
    await first.waitFor(() => first.events().filter((e) => e.type === "task").length >= 2, 30_000, "two finished tasks");
    const finishedBefore = first
      .events()
      .filter((e) => e.type === "task")
      .map((e) => String(e.taskId));
    await first.kill("SIGKILL");
    const second = track(startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "42"]));
    assert.equal(await second.exited, 0, second.err);
    assert.ok(second.events().some((e) => e.type === "warning" && String(e.message).includes("resuming job")));
    assert.ok((await shardBytes(out)).equals(ref));
    for (const t of finishedBefore) {
      const runs = workers.reduce((n, w) => n + startedLines(w, t), 0);
      assert.equal(runs, 1, `task ${t} finished before the crash and must not run again`);
    }
    await stopAll(workers);
  });

  test("nats-server restarted mid-job: the job completes with identical output", async () => {
    const cfg = await writeConfig("restart-server", configYaml("ties"));
    const ref = await embedded(cfg, "restart-server");
    const prefix = uniquePrefix();
    const workers = [1, 2].map((i) => track(startWorker(server.url, { name: `s${i}`, prefix, delayMs: 700, ackWaitS: 3 })));
    const out = join(dir, "nats-restart-server");
    const c = track(startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "42"]));
    await c.waitFor(() => c.events().some((e) => e.type === "task"), 30_000, "first finished task");
    await server.restart();
    assert.equal(await c.exited, 0, c.err);
    assert.ok((await shardBytes(out)).equals(ref));
    await stopAll(workers);
  });

  test("a task that fails permanently fails the job naming the tensor, the file and the worker", async () => {
    const root = join(dir, "models-broken");
    await cp(FIXTURES, root, { recursive: true });
    const cfg = await writeConfig("broken", configYaml("ties", root));
    const prefix = uniquePrefix();
    const w = track(startWorker(server.url, { name: "breaker", prefix, delayMs: 1500 }));
    const out = join(dir, "nats-broken");
    // Should the breaker die instead of reporting, the job fails (and says so) rather than waits.
    const c = track(startCoordinator(server.url, prefix, cfg, out, ["--worker-wait-timeout", "60"]));
    await c.waitFor(() => c.events().some((e) => e.type === "plan"), 20_000, "plan");
    const victimFile = join(root, "expert-add", "model.safetensors");
    await truncate(victimFile, 100_000);
    const code = await c.exited;
    assert.notEqual(code, 0);
    const line = c.err.trim().split("\n").at(-1)!;
    assert.match(line, /merge model\.\S+weight/, "names the tensor");
    assert.ok(line.includes(victimFile), `names the file: ${line}`);
    assert.match(line, /worker breaker/, "names the worker");
    await stopAll([w]);
  });

  test("with no worker connected the coordinator says so instead of waiting silently", async () => {
    const cfg = await writeConfig("lonely", configYaml("ties"));
    const c = track(startCoordinator(server.url, uniquePrefix(), cfg, join(dir, "nats-lonely"), ["--worker-wait-timeout", "3"]));
    const code = await c.exited;
    assert.notEqual(code, 0);
    assert.ok(c.events().some((e) => e.type === "warning" && /no mergeloom worker is connected/.test(String(e.message))));
    assert.match(c.err, /no worker connected for 3 s; start one with: mergeloom worker --nats/);
  });

  test("workers without a shared file system read inputs over HTTP ranges and return outputs through the object store", async () => {
    const cfg = await writeConfig("ties-local", configYaml("ties"));
    const ref = await embedded(cfg, "ties-local");
    const http = await startRangeServer(FIXTURES);
    try {
      const remote = await writeConfig("ties-http", configYaml("ties", http.url));
      const prefix = uniquePrefix();
      // The workers' only storage root is an empty directory: every local path is off limits.
      const jail = await mkdtemp(join(tmpdir(), "mergeloom-nofs-"));
      const workers = [1, 2].map((i) => track(startWorker(server.url, { name: `o${i}`, prefix, extra: ["--storage-root", jail] })));
      const out = join(dir, "nats-object");
      const c = track(startCoordinator(server.url, prefix, remote, out, ["--random-seed", "42", "--output-via", "object"]));
      assert.equal(await c.exited, 0, c.err);
      assert.ok((await shardBytes(out)).equals(ref), "object-store output differs from the embedded output");
      assert.ok(http.requests() > 5 * 39, `expected byte-range reads over HTTP, saw ${http.requests()} requests`);
      await stopAll(workers);
      await rm(jail, { recursive: true, force: true });
    } finally {
      await http.close();
    }
  });

  test("spans from the coordinator and every worker form one trace with the expected parent/child structure", async () => {
    const cfg = await writeConfig("traced", configYaml("ties"));
    const prefix = uniquePrefix();
    const traceFile = join(dir, "spans.jsonl");
    const workers = [1, 2].map((i) => track(startWorker(server.url, { name: `tr${i}`, prefix, extra: [], traceFile })));
    const c = track(startCoordinator(server.url, prefix, cfg, join(dir, "nats-traced"), [], traceFile));
    assert.equal(await c.exited, 0, c.err);
    await stopAll(workers); // flushes the workers' span processors
    type Span = {
      traceId: string;
      spanId: string;
      parentSpanId: string | null;
      name: string;
      attributes: Record<string, unknown>;
      resource: Record<string, unknown>;
    };
    const spans: Span[] = (await readFile(traceFile, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const root = spans.filter((s) => s.name === "job merge");
    assert.equal(root.length, 1);
    assert.equal(root[0].parentSpanId, null);
    const inTrace = spans.filter((s) => s.traceId === root[0].traceId);
    const parentName = (s: Span) => (s.parentSpanId ? byId.get(s.parentSpanId)?.name : undefined);
    for (const stage of ["plan", "dispatch", "assemble"]) {
      const st = inTrace.filter((s) => s.name === stage);
      assert.equal(st.length, 1, `one ${stage} span`);
      assert.equal(parentName(st[0]), "job merge");
    }
    const processes = inTrace.filter((s) => s.name === "process mergeloom.v1.task.merge");
    const tasks = c.events().find((e) => e.type === "plan")!.tasks as number;
    assert.ok(processes.length >= tasks, `a process span per task: ${processes.length} < ${tasks}`);
    for (const p of processes) {
      assert.equal(parentName(p), "dispatch");
      assert.equal(p.resource["service.name"], "mergeloom-worker");
      assert.ok(Number(p.attributes["messaging.delivery.attempt"]) >= 1);
    }
    const workerNames = new Set(inTrace.map((s) => s.attributes["mergeloom.worker.name"]).filter(Boolean));
    for (const stage of ["load", "merge", "write"]) {
      const st = inTrace.filter((s) => s.name === stage);
      assert.ok(st.length >= tasks, `${stage} spans on the workers`);
      for (const x of st) assert.equal(parentName(x), "process mergeloom.v1.task.merge");
    }
    assert.ok(workerNames.size >= 1);
  });

  test("a worker sent SIGTERM mid-task finishes that task, takes no new one and exits 0", async () => {
    const cfg = await writeConfig("drain", configYaml("ties"));
    const ref = await embedded(cfg, "drain");
    const prefix = uniquePrefix();
    const drainer = track(startWorker(server.url, { name: "drainer", prefix, delayMs: 1500 }));
    await drainer.waitFor((s) => s.includes("ready"), 15_000, "drainer ready");
    const out = join(dir, "nats-drain");
    const c = track(startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "42"]));
    await drainer.waitFor((s) => / started \(attempt 1/.test(s), 20_000, "a task on the drainer");
    const taskId = /task (t\d+) of job \S+ started/.exec(drainer.err)![1];
    const helper = track(startWorker(server.url, { name: "helper", prefix }));
    drainer.child.kill("SIGTERM");
    assert.equal(await drainer.exited, 0, drainer.err);
    assert.match(drainer.err, new RegExp(`task ${taskId} of job \\S+ done`), "the in-flight task is finished, not dropped");
    assert.equal((drainer.err.match(/ started \(attempt/g) ?? []).length, 1, "no new task after SIGTERM");
    assert.equal(await c.exited, 0, c.err);
    assert.ok((await shardBytes(out)).equals(ref));
    await stopAll([helper]);
  });

  test("mergeloom jobs lists the running job and mergeloom cancel stops it and removes its temporary output", async () => {
    const cfg = await writeConfig("cancel", configYaml("ties"));
    const prefix = uniquePrefix();
    const w = track(startWorker(server.url, { name: "slow", prefix, delayMs: 2000 }));
    const out = join(dir, "nats-cancel");
    const c = track(startCoordinator(server.url, prefix, cfg, out));
    await c.waitFor(() => c.events().some((e) => e.type === "plan"), 20_000, "plan");
    const jobId = String(c.events().find((e) => e.type === "plan")!.jobId);
    const jobs = await runCli(["jobs", "--nats", server.url, "--nats-prefix", prefix, "--json"]);
    assert.equal(jobs.code, 0, jobs.stderr);
    const listed = JSON.parse(jobs.stdout) as { jobs: { jobId: string; state: string }[]; workers: { name: string }[] };
    assert.deepEqual(
      listed.jobs.map((j) => [j.jobId, j.state]),
      [[jobId, "running"]],
    );
    assert.deepEqual(
      listed.workers.map((x) => x.name),
      ["slow"],
    );
    const cancel = await runCli(["cancel", jobId, "--nats", server.url, "--nats-prefix", prefix]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.notEqual(await c.exited, 0);
    assert.match(c.err, /cancelled/);
    const leftovers = (await readdir(dir)).filter((f) => f.startsWith("nats-cancel"));
    assert.deepEqual(leftovers, [], "no output and no temporary directory remain");
    const after = JSON.parse((await runCli(["jobs", "--nats", server.url, "--nats-prefix", prefix, "--json"])).stdout) as { jobs: { state: string }[] };
    assert.equal(after.jobs[0].state, "cancelled");
    await stopAll([w]);
  });

  test("a worker refuses task paths outside its storage roots and the job reports it", async () => {
    const cfg = await writeConfig("escape", configYaml("ties"));
    const prefix = uniquePrefix();
    const jail = await mkdtemp(join(tmpdir(), "mergeloom-jail-"));
    const w = track(startWorker(server.url, { name: "jailed", prefix, extra: ["--storage-root", jail] }));
    const c = track(startCoordinator(server.url, prefix, cfg, join(jail, "out")));
    assert.notEqual(await c.exited, 0);
    assert.match(c.err, /outside the storage roots/);
    await stopAll([w]);
    await rm(jail, { recursive: true, force: true });
  });
});
