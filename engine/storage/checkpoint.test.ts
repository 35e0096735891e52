import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdir, realpath, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError, PathEscapeError } from "../errors/index.js";
import { openCheckpoint } from "./checkpoint.js";
import { fixtureDir, safetensorsBytes, withTempDir, writeSafetensors } from "./storage-test-support.js";

const FIX = fixtureDir();
/** From the fixture README: 39 tensors, total_size 1,487,616 bytes of bf16 payload. */
const TENSOR_COUNT = 39;
const TOTAL_BYTES = 1_487_616;

/** Independent header decode for comparison: name -> [absolute begin, absolute end]. */
function rawSpans(file: string): Map<string, [number, number]> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const hdr = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { data_offsets: [number, number] }>;
  const out = new Map<string, [number, number]>();
  for (const [k, v] of Object.entries(hdr)) if (k !== "__metadata__") out.set(k, [8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1]]);
  return out;
}

async function expectCheckpointError(p: Promise<unknown>, pattern: RegExp, code = "CHECKPOINT_INVALID"): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CheckpointError, `expected CheckpointError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  });
}

const F32_2 = { dtype: "F32", shape: [2], data_offsets: [0, 8] };

describe("openCheckpoint on the arith-llama fixtures", () => {
  test("a single-file checkpoint lists every tensor with its file, dtype, shape and byte range", async () => {
    const ck = await openCheckpoint(join(FIX, "base"));
    const file = join(await realpath(join(FIX, "base")), "model.safetensors");
    assert.equal(ck.tensors.size, TENSOR_COUNT);
    assert.deepEqual(ck.files, [file]);
    const spans = rawSpans(file);
    let total = 0;
    for (const t of ck.tensors.values()) {
      assert.equal(t.uri, file);
      assert.equal(t.dtype, "BF16");
      assert.deepEqual([t.offset, t.offset + t.byteLength], spans.get(t.name));
      total += t.byteLength;
    }
    assert.equal(total, TOTAL_BYTES);
    assert.deepEqual(ck.tensors.get("model.layers.2.self_attn.k_proj.weight")?.shape, [64, 128]);
    assert.deepEqual(ck.tensors.get("model.layers.0.mlp.down_proj.weight")?.shape, [128, 352]);
    assert.equal(ck.config?.num_hidden_layers, 4);
    assert.equal(ck.config?.hidden_size, 128);
  });

  test("a sharded checkpoint maps each tensor to the shard its index names", async () => {
    const ck = await openCheckpoint(join(FIX, "expert-sub"));
    const dir = join(FIX, "expert-sub");
    assert.equal(ck.tensors.size, TENSOR_COUNT);
    assert.deepEqual(
      ck.files.map((f) => f.slice(dir.length + 1)),
      ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
    );
    const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
    let total = 0;
    for (const [name, shard] of Object.entries(index.weight_map)) {
      const t = ck.tensors.get(name);
      assert.ok(t, name);
      assert.equal(t.uri, join(dir, shard));
      assert.deepEqual([t.offset, t.offset + t.byteLength], rawSpans(join(dir, shard)).get(name));
      total += t.byteLength;
    }
    assert.equal(total, TOTAL_BYTES);
    assert.match(ck.tensors.get("model.embed_tokens.weight")!.uri, /00001-of/);
    assert.match(ck.tensors.get("lm_head.weight")!.uri, /00002-of/);
  });

  test("a path to one .safetensors file opens that file and reads config.json beside it", async () => {
    const ck = await openCheckpoint(join(FIX, "expert-sub", "model-00002-of-00002.safetensors"));
    assert.ok(ck.tensors.has("lm_head.weight"));
    assert.ok(!ck.tensors.has("model.embed_tokens.weight"));
    assert.equal(ck.config?.model_type, "llama");
  });

  test("storage roots confine checkpoints: a fixture outside the roots is refused", async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(openCheckpoint(join(FIX, "base"), { storageRoots: [dir] }), PathEscapeError);
      const ck = await openCheckpoint(join(FIX, "base"), { storageRoots: [FIX] });
      assert.equal(ck.tensors.size, TENSOR_COUNT);
    });
  });

  test("a shard symlinked out of the storage roots is refused", async () => {
    await withTempDir(async (dir) => {
      await symlink(join(FIX, "base", "model.safetensors"), join(dir, "model.safetensors"));
      await assert.rejects(openCheckpoint(dir, { storageRoots: [dir] }), PathEscapeError);
    });
  });
});

describe("openCheckpoint rejects malformed safetensors files", () => {
  const cases: Array<[string, () => Buffer, RegExp]> = [
    ["a file shorter than the 8-byte prefix", () => Buffer.alloc(5), /too short/],
    ["a header length beyond the end of the file", () => safetensorsBytes({ x: F32_2 }, 8, { declaredLength: 5000n }), /runs past the end/],
    ["a header length over the cap", () => safetensorsBytes({ x: F32_2 }, 8, { declaredLength: 200_000_000n }), /exceeds the 100000000-byte limit/],
    ["a non-JSON header", () => safetensorsBytes("{not json", 0), /not valid UTF-8 JSON/],
    ["an unknown dtype", () => safetensorsBytes({ x: { dtype: "F12", shape: [2], data_offsets: [0, 8] } }, 8), /unknown dtype "F12"/],
    [
      "a dtype and shape that disagree with the byte length",
      () => safetensorsBytes({ x: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8),
      /needs 12 bytes but data_offsets span 8/,
    ],
    [
      "overlapping tensors",
      () => safetensorsBytes({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, 12),
      /overlap/,
    ],
    ["tensor data cut off by truncation", () => safetensorsBytes({ x: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, 10), /truncated/],
  ];
  for (const [what, bytes, pattern] of cases) {
    test(`${what} is a CheckpointError naming the file`, async () => {
      await withTempDir(async (dir) => {
        const file = join(dir, "model.safetensors");
        await writeFile(file, bytes());
        await expectCheckpointError(openCheckpoint(dir), pattern);
        await assert.rejects(openCheckpoint(dir), (err: unknown) => (err as Error).message.includes(file));
      });
    });
  }
});

describe("openCheckpoint validates sharded indexes", () => {
  async function sharded(dir: string, weightMap: Record<string, string>, shards: Record<string, unknown>): Promise<void> {
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    for (const [name, header] of Object.entries(shards)) await writeSafetensors(join(dir, name), header, 8);
  }

  test("a shard named in the index that is missing is CHECKPOINT_MISSING naming shard and index", async () => {
    await withTempDir(async (dir) => {
      await sharded(dir, { a: "s1.safetensors", b: "s2.safetensors" }, { "s1.safetensors": { a: F32_2 } });
      await expectCheckpointError(
        openCheckpoint(dir),
        /model\.safetensors\.index\.json: shard s2\.safetensors named in the index does not exist/,
        "CHECKPOINT_MISSING",
      );
    });
  });

  test("a tensor listed in the index but absent from its shard is refused", async () => {
    await withTempDir(async (dir) => {
      await sharded(dir, { a: "s1.safetensors", b: "s1.safetensors" }, { "s1.safetensors": { a: F32_2 } });
      await expectCheckpointError(openCheckpoint(dir), /tensor 'b' is listed in the index under s1\.safetensors but that shard does not contain it/);
    });
  });

  test("a tensor present in two shards is refused", async () => {
    await withTempDir(async (dir) => {
      await sharded(
        dir,
        { a: "s1.safetensors", b: "s2.safetensors" },
        { "s1.safetensors": { a: F32_2 }, "s2.safetensors": { a: F32_2, b: { ...F32_2, data_offsets: [0, 8] } } },
      );
      // b overlaps a in s2 as written; give b its own span so only the duplication is wrong.
      await writeSafetensors(join(dir, "s2.safetensors"), { a: F32_2, b: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, 16);
      await expectCheckpointError(openCheckpoint(dir), /tensor 'a' appears in both s1\.safetensors and s2\.safetensors/);
    });
  });

  test("shard names with a slash or `..` are refused before any file is opened", async () => {
    await withTempDir(async (dir) => {
      for (const bad of ["../base/model.safetensors", "sub/s1.safetensors", ".."]) {
        await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { a: bad } }));
        await expectCheckpointError(openCheckpoint(dir), /shard names must be plain file names/);
      }
    });
  });

  test("an index without a weight_map object, or not JSON, names the index file", async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {} }));
      await expectCheckpointError(openCheckpoint(dir), /index\.json: index has no weight_map object/);
      await writeFile(join(dir, "model.safetensors.index.json"), "{oops");
      await expectCheckpointError(openCheckpoint(dir), /index\.json: index is not valid JSON/);
    });
  });
});

describe("openCheckpoint explains what is missing", () => {
  test("a directory without safetensors lists what it found and says to convert", async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "pytorch_model.bin"), "x");
      await writeFile(join(dir, "config.json"), "{}");
      await expectCheckpointError(
        openCheckpoint(dir),
        /no model\.safetensors or model\.safetensors\.index\.json in .* \(found: config\.json, pytorch_model\.bin\); convert the checkpoint to safetensors first/,
        "CHECKPOINT_MISSING",
      );
    });
  });

  test("a path that does not exist is CHECKPOINT_MISSING", async () => {
    await expectCheckpointError(openCheckpoint("/nonexistent/model-dir"), /no such file or directory/, "CHECKPOINT_MISSING");
  });

  test("an invalid config.json is an error naming config.json", async () => {
    await withTempDir(async (dir) => {
      await writeSafetensors(join(dir, "model.safetensors"), { a: F32_2 }, 8);
      await writeFile(join(dir, "config.json"), '{"hidden_size": 12,');
      await expectCheckpointError(openCheckpoint(dir), /config\.json: config\.json is not valid JSON/);
    });
  });

  test("a checkpoint inside a nested directory reports the directory listing, not a crash", async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, "empty"));
      await expectCheckpointError(openCheckpoint(join(dir, "empty")), /found: nothing/, "CHECKPOINT_MISSING");
    });
  });
});
