/**
 * The driver's hints to a Hub source, against the test Hub on 127.0.0.1: `willNeed` streams a
 * job's bytes in before the kernel asks, and `dontNeed` frees them (the next read crosses the
 * network again), counted by the server's tensor-byte counter; the next job's hints never push out
 * the blocks of a tensor still being read.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import { configureHub, hubSettingsFromEnv, openByteSource } from "@mergeloom/engine/storage";
import { startTestHub, type TestHub } from "../harness/hub-server.js";
import { until } from "../harness/until.js";

const ROWS = 3;
const COLS = 1 << 20; // F32: 12 MiB, two 8 MiB-aligned blocks
let dir: string;
let hub: TestHub;
let uri: string;
let dataStart: number;
let data: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-hints-"));
  const repo = join(dir, "repo");
  await mkdir(repo);
  const { bytes, dataBytes } = buildSafetensorsHeader([{ name: "w", dtype: "F32", shape: [ROWS, COLS] }]);
  data = Buffer.alloc(dataBytes);
  for (let i = 0; i < dataBytes; i += 4) data.writeFloatLE((i % 9973) / 7, i);
  dataStart = bytes.byteLength;
  await writeFile(join(repo, "model.safetensors"), Buffer.concat([bytes, data]));
  hub = await startTestHub();
  const sha = await hub.addCommit("t/one", repo);
  uri = `hf://t/one@${sha}/model.safetensors`;
  // A 16 MiB block budget: 12 MiB held is past half of it, so released blocks are really dropped.
  configureHub(
    hubSettingsFromEnv({
      HF_ENDPOINT: hub.url,
      HF_HUB_CACHE: join(dir, "cache"),
      HF_TOKEN: "",
      MERGELOOM_HUB_MEMORY: String(16 << 20),
      MERGELOOM_RANGE_CACHE_DIR: join(dir, "ranges"),
    }),
  );
});
after(async () => {
  configureHub(undefined);
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

test("willNeed fetches the range before any read; dontNeed releases it, so the next read fetches it again", async () => {
  const src = openByteSource(uri);
  hub.resetCounters();
  src.willNeed!(dataStart, data.byteLength);
  await until(() => hub.counters.tensorBytesServed >= data.byteLength, 10_000);
  const served = hub.counters.tensorBytesServed;
  assert.equal(served, data.byteLength, "the whole tensor, once");
  assert.ok(Buffer.from(await src.read(dataStart, data.byteLength)).equals(data));
  assert.ok(Buffer.from(await src.read(dataStart + 100, 4096)).equals(data.subarray(100, 4196)));
  assert.equal(hub.counters.tensorBytesServed, served, "reads of prefetched bytes are served from memory");

  src.dontNeed!(dataStart, data.byteLength);
  await new Promise((r) => setTimeout(r, 20)); // the release waits on the (cached) header
  assert.ok(Buffer.from(await src.read(dataStart, data.byteLength)).equals(data));
  assert.equal(hub.counters.tensorBytesServed, 2 * served, "released blocks are fetched again");
  src.dontNeed!(dataStart, data.byteLength); // done: the next test starts with nothing claimed
  await new Promise((r) => setTimeout(r, 20));
  await src.close();
});

test("the next tensor's read-ahead does not push out the tensor being read: its second pass is served from memory", async () => {
  // Two 12 MiB tensors (an 8 MiB and a 4 MiB block each) in one file, a 16 MiB budget: the second
  // tensor's hint finds room for its 4 MiB block only. Before, it pushed the first tensor's 8 MiB
  // block out to the disk cache, and the second pass read it back from there.
  const repo = join(dir, "two");
  await mkdir(repo);
  const { bytes, dataBytes } = buildSafetensorsHeader([
    { name: "a", dtype: "F32", shape: [ROWS, COLS] },
    { name: "b", dtype: "F32", shape: [ROWS, COLS] },
  ]);
  const body = Buffer.alloc(dataBytes);
  for (let i = 0; i < dataBytes; i += 4) body.writeFloatLE((i % 7919) / 3, i);
  await writeFile(join(repo, "model.safetensors"), Buffer.concat([bytes, body]));
  const sha = await hub.addCommit("t/two", repo);
  const src = openByteSource(`hf://t/two@${sha}/model.safetensors`);
  const start = bytes.byteLength;
  const half = dataBytes / 2;
  const spilled = async () => (await readdir(join(dir, "ranges"), { recursive: true }).catch(() => [] as string[])).length;
  const before = await spilled();

  hub.resetCounters();
  assert.ok(Buffer.from(await src.read(start, half)).equals(body.subarray(0, half)), "first pass over a");
  await src.willNeed!(start + half, half); // b: the thread's next job
  await until(() => hub.counters.tensorBytesServed >= half + (4 << 20), 10_000, "b's 4 MiB block");
  await new Promise((r) => setTimeout(r, 100)); // anything more would have arrived by now
  assert.equal(hub.counters.tensorBytesServed, half + (4 << 20), "a once, and only the block of b that fits beside it");
  assert.ok(Buffer.from(await src.read(start, half)).equals(body.subarray(0, half)), "second pass over a");
  assert.equal(hub.counters.tensorBytesServed, half + (4 << 20), "the second pass crossed no network");
  assert.equal(await spilled(), before, "and nothing went to the disk cache");

  src.dontNeed!(start, half); // a's job is done: b's reads get the room
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(Buffer.from(await src.read(start + half, half)).equals(body.subarray(half)));
  assert.equal(hub.counters.tensorBytesServed, 2 * half, "b's first block fetched once it was read");
  await src.close();
});
