import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RangeCache } from "./range-cache.js";

function used(dir: string): number {
  let n = 0;
  for (const d of readdirSync(dir)) for (const f of readdirSync(join(dir, d))) n += statSync(join(dir, d, f)).size;
  return n;
}

test("ranges come back byte for byte; past its size the least recently used go first", async () => {
  const dir = mkdtempSync(join(tmpdir(), "range-cache-"));
  const c = new RangeCache(dir, 3000);
  const r = (v: number) => new Uint8Array(1000).fill(v);
  c.put("a", r(1));
  await new Promise((res) => setTimeout(res, 20));
  c.put("b", r(2));
  await new Promise((res) => setTimeout(res, 20));
  const got = new Uint8Array(1000);
  assert.ok(c.get("a", got) && got.every((x) => x === 1), "a is cached"); // touches a: b is now the oldest
  await new Promise((res) => setTimeout(res, 20));
  c.put("c", r(3));
  c.put("d", r(4)); // 4000 > 3000: evict down to 2700 → b and then a (oldest first)... a was touched after b
  assert.ok(used(dir) <= 3000);
  assert.equal(c.get("b", got), false, "b, the least recently used, was evicted");
  assert.ok(c.get("d", got) && got[0] === 4);
  assert.equal(c.get("zz", got), false);
  assert.equal(c.get("d", new Uint8Array(5)), false, "a length mismatch is a miss");
});
