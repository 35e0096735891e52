import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { DType } from "@mergeloom/proto/dtype";
import { parseHeaderLength, parseSafetensorsHeader } from "../tensor/safetensors.js";
import { openCheckpoint } from "../storage/checkpoint.js";
import { layoutShards, preallocateShards, shardFileName, writeShardIndex } from "./shard-layout.js";
import { withTempDir } from "../storage/storage-test-support.js";

// Payload sizes: a 40 B, b 24 B, c 100 B, d 8 B, e 16 B.
const TENSORS: { name: string; dtype: DType; shape: number[] }[] = [
  { name: "a", dtype: "F32", shape: [10] },
  { name: "b", dtype: "BF16", shape: [3, 4] },
  { name: "c", dtype: "U8", shape: [100] },
  { name: "d", dtype: "F64", shape: [1] },
  { name: "e", dtype: "F16", shape: [2, 4] },
];

describe("layoutShards", () => {
  test("packs tensors greedily in order without exceeding the cap, an oversized tensor alone", () => {
    const plans = layoutShards(TENSORS, 64);
    // a+b = 64 fits exactly; c (100 > 64) goes alone; d+e = 24.
    assert.deepEqual(
      plans.map((p) => p.entries.map((e) => e.name)),
      [["a", "b"], ["c"], ["d", "e"]],
    );
    assert.deepEqual(
      plans.map((p) => p.file),
      ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"],
    );
    for (const p of plans) {
      const data = p.entries.reduce((s, e) => s + e.byteLength, 0);
      assert.ok(data <= 64 || p.entries.length === 1);
      assert.equal(p.fileBytes, p.header.byteLength + data);
      assert.equal(p.header.byteLength % 8, 0);
    }
  });

  test("a single shard is named model.safetensors and gets no index (mergekit's TensorWriter.finalize)", async () => {
    const plans = layoutShards(TENSORS, 1 << 20);
    assert.equal(plans.length, 1);
    assert.equal(plans[0].file, "model.safetensors");
    assert.equal(shardFileName(0, 1), "model.safetensors");
    assert.equal(shardFileName(11, 12), "model-00012-of-00012.safetensors");
    await withTempDir(async (dir) => {
      await preallocateShards(dir, plans);
      await writeShardIndex(dir, plans);
      assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    });
  });

  test("entries are contiguous after the header, in the given order", () => {
    const [p] = layoutShards(TENSORS, 1 << 20);
    let pos = p.header.byteLength;
    for (const e of p.entries) {
      assert.equal(e.offset, pos);
      pos += e.byteLength;
    }
    assert.deepEqual(
      p.entries.map((e) => e.byteLength),
      [40, 24, 100, 8, 16],
    );
  });

  test("a non-positive cap or a duplicated name is refused", () => {
    assert.throws(() => layoutShards(TENSORS, 0), /positive integer/);
    assert.throws(() => layoutShards([TENSORS[0], TENSORS[0]], 100), /tensor 'a' is listed twice/);
  });
});

describe("preallocateShards and writeShardIndex", () => {
  test("a preallocated shard parses back with parseSafetensorsHeader to exactly the plan", async () => {
    await withTempDir(async (dir) => {
      const plans = layoutShards(TENSORS, 64);
      await preallocateShards(dir, plans);
      for (const p of plans) {
        const bytes = readFileSync(join(dir, p.file));
        assert.equal(bytes.byteLength, p.fileBytes);
        const n = parseHeaderLength(p.file, bytes.subarray(0, 8), bytes.byteLength);
        const h = parseSafetensorsHeader(p.file, bytes.subarray(8, 8 + n), bytes.byteLength);
        assert.equal(h.dataStart, p.header.byteLength);
        assert.deepEqual([...h.tensors.values()], p.entries);
      }
    });
  });

  test("tensors written at their planned offsets in any order read back through openCheckpoint", async () => {
    await withTempDir(async (dir) => {
      const plans = layoutShards(TENSORS, 64);
      await preallocateShards(dir, plans);
      await writeShardIndex(dir, plans, { mergeloom_version: "test" });
      const written = new Map<string, Buffer>();
      for (const p of [...plans].reverse()) {
        for (const e of [...p.entries].reverse()) {
          const data = Buffer.alloc(e.byteLength, e.name.charCodeAt(0));
          written.set(e.name, data);
          const fh = await open(join(dir, p.file), "r+");
          await fh.write(data, 0, data.byteLength, e.offset);
          await fh.close();
        }
      }
      const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
      assert.deepEqual(index.metadata, { mergeloom_version: "test", total_size: 40 + 24 + 100 + 8 + 16 });
      assert.equal(index.weight_map.c, "model-00002-of-00003.safetensors");
      const ck = await openCheckpoint(dir);
      assert.deepEqual([...ck.tensors.keys()].sort(), ["a", "b", "c", "d", "e"]);
      for (const t of ck.tensors.values()) {
        const bytes = readFileSync(t.uri).subarray(t.offset, t.offset + t.byteLength);
        assert.deepEqual(bytes, written.get(t.name));
      }
      for (const p of plans) assert.equal(statSync(join(dir, p.file)).size, p.fileBytes);
    });
  });
});
