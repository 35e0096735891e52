import { test } from "node:test";
import assert from "node:assert/strict";
import { BlockPool, type BlockRequest } from "./block-pool.js";
import { copyChunks } from "./hub-byte-source.js";
import { RedirectCache, signedUrlExpiry } from "./redirect-cache.js";

const block =
  (v: number, n = 100) =>
  async () => [new Uint8Array(n).fill(v)];

test("a block is loaded once, kept within the budget (least recently used out), and read-ahead never goes over it", async () => {
  const pool = new BlockPool(250);
  let loads = 0;
  const counted = (v: number) => () => (loads++, block(v)());
  await pool.get("a", 100, counted(1));
  await pool.get("a", 100, counted(1));
  assert.equal(loads, 1);
  await pool.get("b", 100, counted(2));
  await pool.get("a", 100, counted(1)); // a is now the most recent
  const evicted: string[] = [];
  await pool.get("c", 100, counted(3), { onEvict: () => evicted.push("c") });
  assert.equal(pool.has("b"), false, "b, the least recently used, made room");
  assert.ok(pool.has("a") && pool.has("c"));
  assert.ok(pool.bytes <= 250);
  // Read-ahead does not evict in-flight blocks to make room: it is skipped.
  let release!: () => void;
  const slow = pool.get("d", 100, () => new Promise((r) => (release = () => r([new Uint8Array(100)]))));
  assert.equal(pool.get("e", 200, counted(5), { ahead: true }), undefined);
  release();
  await slow;
});

test("a failed read-ahead block reaches the read that needs it once, with no second round of requests", async () => {
  const pool = new BlockPool(1000);
  let loads = 0;
  const failing = () => (loads++, Promise.reject(new Error("503")));
  await assert.rejects(pool.get("x", 100, failing, { ahead: true })!, /503/);
  await assert.rejects(pool.get("x", 100, failing)!, /503/);
  assert.equal(loads, 1);
  await pool.get("x", 100, block(7)); // forgotten after that: a later read tries again
  assert.ok(pool.has("x"));
});

test("chunked ranges are copied from any offset, before or inside the range", () => {
  const chunks = [Uint8Array.of(0, 1, 2), Uint8Array.of(3, 4), Uint8Array.of(5, 6, 7, 8)];
  assert.deepEqual([...copyChunks(chunks, 2, new Uint8Array(5))], [2, 3, 4, 5, 6]);
  assert.deepEqual([...copyChunks(chunks, 0, new Uint8Array(9))], [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...copyChunks(chunks, -2, new Uint8Array(4))], [0, 0, 0, 1]);
});

test("redirect targets are kept until their signature expires (less a minute), or 10 minutes when it states none", () => {
  assert.equal(signedUrlExpiry("https://cdn/x?Expires=1700000000&Signature=s"), 1_700_000_000_000);
  assert.equal(signedUrlExpiry("https://s3/x?X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600"), Date.UTC(2025, 0, 1, 1));
  assert.equal(signedUrlExpiry("https://storage/lfs/abc?sig=test"), undefined);
  let now = 1_700_000_000_000 - 120_000;
  const c = new RedirectCache(() => now);
  c.set("f", "https://cdn/x?Expires=1700000000");
  c.set("g", "https://storage/lfs/abc");
  assert.equal(c.get("f"), "https://cdn/x?Expires=1700000000");
  now += 61_000; // inside the last minute before expiry
  assert.equal(c.get("f"), undefined);
  assert.equal(c.get("g"), "https://storage/lfs/abc");
  now += 10 * 60_000;
  assert.equal(c.get("g"), undefined);
  c.set("h", "https://cdn/y?Expires=1");
  assert.equal(c.get("h"), undefined, "an already expired target is not kept");
});

test("buffers of released blocks serve later fetches, but never while a read has the block pinned", async () => {
  const pool = new BlockPool(8 << 20);
  const size = 5 << 20;
  const load = (v: number) => async () => [pool.takeBuffer(size).fill(v)];
  const a = pool.get("a", size, load(1), { pin: true })!;
  const first = (await a)[0];
  pool.release(["a"]);
  assert.ok(pool.has("a"), "pinned: kept");
  const b = (await pool.get("b", size, load(2))!)[0];
  assert.notEqual(b.buffer, first.buffer, "a pinned block's buffer is not handed out");
  assert.equal(first[0], 1);
  pool.unpin("a", a);
  pool.release(["a", "b"]);
  assert.equal(pool.has("a") || pool.has("b"), false);
  const c = pool.takeBuffer(size);
  assert.ok(c.buffer === first.buffer || c.buffer === b.buffer, "a released block's buffer is reused");
  assert.equal(c.byteLength, size);
  // Sizes outside the recycled classes get buffers of their own.
  assert.equal(pool.takeBuffer(100).buffer.byteLength < 1 << 20, true);
});

test("a pool under half its budget keeps released blocks (a later job may read them again)", async () => {
  const pool = new BlockPool(64 << 20);
  await pool.get("a", 5 << 20, async () => [pool.takeBuffer(5 << 20)]);
  pool.release(["a"]);
  assert.ok(pool.has("a"));
});

test("recycled buffers count against the budget and are the first thing given up for room", async () => {
  const pool = new BlockPool(20 << 20);
  const size = 8 << 20;
  await pool.get("a", size, async () => [pool.takeBuffer(size)]);
  await pool.get("b", size, async () => [pool.takeBuffer(size)]);
  pool.release(["a"]);
  assert.equal(pool.bytes, 16 << 20, "a's buffer is kept, and counted");
  await pool.get("c", size, async () => [Buffer.alloc(size)]); // not from the pool: the free buffer is dropped for room
  assert.ok(pool.has("b") && pool.has("c"), "live blocks stay");
  assert.ok(pool.bytes <= 20 << 20);
});

test("a fetch that needs room takes a recycled buffer rather than give it up and allocate a fresh one", async () => {
  const pool = new BlockPool(16 << 20);
  const size = 8 << 20;
  const a = (await pool.get("a", size, async (alloc) => [alloc(size)])!)[0];
  await pool.get("b", size, async (alloc) => [alloc(size)]);
  pool.release(["a"]); // 16 MiB held, past half the budget: a's buffer goes to the free list
  const c = (await pool.get("c", size, async (alloc) => [alloc(size)])!)[0];
  assert.equal(c.buffer, a.buffer, "c is read into a's old buffer");
  assert.ok(pool.bytes <= 16 << 20);
});

test("read-ahead for another tensor takes no room from claimed blocks; a read takes it from the idle job's before the live one's", async () => {
  const pool = new BlockPool(400);
  const live = () => true;
  const idle = () => false;
  const evicted: string[] = [];
  const get = (key: string, req: BlockRequest) => pool.get(key, 100, block(1), { ...req, onEvict: () => evicted.push(key) });
  await get("old", { live: idle });
  pool.release(["old"]); // its job is done; at a quarter of the budget the block is kept, unclaimed
  assert.ok(pool.has("old"));
  await get("cur", { live }); // the tensor a kernel is reading
  await get("next", { ahead: true, live: idle }); // the held job's prefetch
  await get("more", { ahead: true, live: idle });
  // Full. Read-ahead for another tensor may take only the finished job's room.
  assert.notEqual(get("ahead1", { ahead: true, live: idle }), undefined);
  assert.equal(get("ahead2", { ahead: true, live: idle }), undefined, "cur, next and more are claimed");
  await get("ahead1", {});
  // A read of the live tensor: the idle job's oldest block goes, the live tensor's stays.
  await get("cur2", { live });
  assert.deepEqual(evicted, ["old", "next"]);
  assert.ok(pool.has("cur") && pool.has("more") && pool.has("cur2"));
});

test("making room pushes out only as many blocks as the fetch needs, however their buffers are recycled", async () => {
  const pool = new BlockPool(32 << 20);
  const size = 8 << 20;
  const evicted: string[] = [];
  const get = (key: string) => pool.get(key, size, async (alloc) => [alloc(size)], { onEvict: () => evicted.push(key), live: () => true });
  for (const k of ["a", "b", "c", "d"]) await get(k);
  await get("e");
  assert.deepEqual(evicted, ["a"], "one block out for one block in");
  assert.ok(pool.has("b") && pool.has("c") && pool.has("d") && pool.has("e"));
  assert.ok(pool.bytes <= 32 << 20);
});
