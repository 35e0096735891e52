/**
 * A distributed merge of Hub models with no shared file system: two worker processes jailed to
 * empty storage roots and an empty HF cache read their tasks' tensor ranges from the test Hub
 * themselves and return outputs through the NATS object store. The output equals the local merge
 * bit for bit, and together the workers read each input tensor byte exactly once. A Hub LoRA
 * adapter reaches such a worker the same way: tasks name its pinned Hub file, not the
 * coordinator's HF cache.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";
import { startCoordinator, startWorker, uniquePrefix, type Proc } from "../harness/cluster.js";
import { startTestHub, type TestHub } from "../harness/hub-server.js";
import { writeLoraAdapter } from "../harness/lora-fixtures.js";

let server: NatsServerHandle;
let hub: TestHub;
let dir: string;
const procs: Proc[] = [];
const saved = { ...process.env };

before(async () => {
  server = await startNatsServer({ jetstream: true });
  hub = await startTestHub();
  dir = await mkdtemp(join(tmpdir(), "mergeloom-hubdist-"));
  for (const m of ["base", "expert-add", "expert-sub"]) await hub.addCommit(`arith/${m}`, join(FIXTURES, m));
  // Worker and coordinator processes inherit these: the Hub is the only place the models are.
  Object.assign(process.env, {
    HF_ENDPOINT: hub.url,
    HF_HUB_CACHE: join(dir, "empty-cache"),
    HF_TOKEN: "",
    MERGELOOM_HUB_RETRY_DELAY_MS: "5",
    MERGELOOM_RANGE_CACHE_DIR: join(dir, "ranges"),
  });
});
after(async () => {
  process.env = saved;
  await Promise.all(procs.map((p) => (p.child.exitCode === null ? p.kill("SIGKILL") : undefined)));
  await server?.stop();
  await hub?.close();
  await rm(dir, { recursive: true, force: true });
});

const yaml = (m: (name: string) => string) =>
  `merge_method: ties\nbase_model: ${m("base")}\nmodels:\n  - model: ${m("expert-add")}\n    parameters: { weight: 1.0, density: 0.5 }\n  - model: ${m("expert-sub")}\n    parameters: { weight: 0.8, density: 0.7 }\ndtype: float32\nout_dtype: bfloat16\n`;

async function shards(out: string): Promise<Buffer> {
  const files = (await readdir(out)).filter((f) => f.endsWith(".safetensors")).sort();
  return Buffer.concat(await Promise.all(files.map((f) => readFile(join(out, f)))));
}

test("two jailed workers read their tasks' Hub ranges themselves; output via the object store equals the local merge", async () => {
  const local = join(dir, "local.yml");
  await writeFile(
    local,
    yaml((n) => join(FIXTURES, n)),
  );
  const lr = await runCli(["merge", local, "-o", join(dir, "local-out"), "--random-seed", "42"]);
  assert.equal(lr.code, 0, lr.stderr);
  const remote = join(dir, "hub.yml");
  await writeFile(
    remote,
    yaml((n) => `arith/${n}`),
  );
  const plan = JSON.parse((await runCli(["plan", remote, "--json"])).stdout) as { bytesToRead: number };

  const prefix = uniquePrefix();
  const jail = await mkdtemp(join(tmpdir(), "mergeloom-nofs-"));
  const rangeCache = join(dir, "range-cache");
  const workers = [1, 2].map((i) =>
    startWorker(server.url, {
      name: `hub${i}`,
      prefix,
      extra: ["--storage-root", jail, ...(i === 1 ? ["--cache-dir", rangeCache, "--cache-size", "64MB"] : [])],
    }),
  );
  procs.push(...workers);
  hub.resetCounters();
  const c = startCoordinator(server.url, prefix, remote, join(dir, "hub-out"), ["--random-seed", "42", "--output-via", "object"]);
  procs.push(c);
  assert.equal(await c.exited, 0, c.err);
  assert.ok((await shards(join(dir, "hub-out"))).equals(await shards(join(dir, "local-out"))), "distributed Hub merge differs from the local merge");
  // Each input tensor byte crossed the network once, split between the workers by task.
  assert.equal(hub.counters.tensorBytesServed, plan.bytesToRead);
  const byWorker = new Map<string, number>();
  for (const e of c.events()) if (e.type === "task") byWorker.set(String(e.worker), (byWorker.get(String(e.worker)) ?? 0) + 1);
  assert.equal(byWorker.size, 2, `both workers took tasks: ${JSON.stringify([...byWorker])}`);
  const last = c
    .events()
    .filter((e) => e.type === "task")
    .at(-1)!;
  // Task events report the network bytes: the tensor bytes, plus each shard's safetensors header
  // once per worker (the Hub source reads ahead within tensors, so it learns where they lie).
  const shardFiles = (
    await Promise.all(
      ["base", "expert-add", "expert-sub"].map(async (m) =>
        (await readdir(join(FIXTURES, m))).filter((f) => f.endsWith(".safetensors")).map((f) => join(FIXTURES, m, f)),
      ),
    )
  ).flat();
  const headers = await Promise.all(shardFiles.map(async (f) => 8 + Number((await readFile(f)).readBigUInt64LE(0))));
  const extra = Number(last.networkBytes) - plan.bytesToRead;
  assert.ok(extra >= 0 && extra <= 2 * headers.reduce((a, b) => a + b, 0), `network bytes ${String(last.networkBytes)} vs tensor bytes ${plan.bytesToRead}`);
  assert.ok((await readdir(rangeCache)).length > 0, "worker 1 kept ranges in its --cache-dir");
  await Promise.all(workers.map((w) => w.kill("SIGTERM")));
  await rm(jail, { recursive: true, force: true });
});

test("a Hub LoRA adapter (model+org/adapter) merges on a worker that cannot see the coordinator's HF cache", async () => {
  await writeLoraAdapter(join(dir, "adapter-src"));
  await hub.addCommit("arith/lora", join(dir, "adapter-src"));
  const cfg = async (name: string, ref: string) => {
    const p = join(dir, `${name}.yml`);
    await writeFile(p, `merge_method: linear\nmodels:\n  - model: ${JSON.stringify(ref)}\n    parameters: { weight: 1.0 }\ndtype: float32\n`);
    return p;
  };
  const lr = await runCli(["merge", await cfg("lora-local", `${join(FIXTURES, "base")}+${join(dir, "adapter-src")}`), "-o", join(dir, "lora-local-out")]);
  assert.equal(lr.code, 0, lr.stderr);

  const prefix = uniquePrefix();
  const jail = await mkdtemp(join(tmpdir(), "mergeloom-nofs-"));
  // Its own empty HF cache, and storage confined to an empty directory: the coordinator's cache
  // (where planning put the adapter's files) is out of its reach.
  const w = startWorker(server.url, { name: "lora1", prefix, extra: ["--storage-root", jail], env: { HF_HUB_CACHE: join(dir, "worker-own-cache") } });
  procs.push(w);
  const c = startCoordinator(server.url, prefix, await cfg("lora-hub", "arith/base+arith/lora"), join(dir, "lora-hub-out"), ["--output-via", "object"]);
  procs.push(c);
  assert.equal(await c.exited, 0, c.err);
  assert.ok(
    (await shards(join(dir, "lora-hub-out"))).equals(await shards(join(dir, "lora-local-out"))),
    "the Hub adapter merged on the worker differs from the local adapter's merge",
  );
  await w.kill("SIGTERM");
  await rm(jail, { recursive: true, force: true });
});
