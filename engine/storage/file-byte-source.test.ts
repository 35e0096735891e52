import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError, StorageError } from "../errors/index.js";
import { FileByteSource, readFully } from "./file-byte-source.js";
import { FileHandlePool } from "./file-handle-pool.js";
import { fixtureDir, withTempDir } from "./storage-test-support.js";

const baseFile = join(fixtureDir(), "base", "model.safetensors");

describe("FileByteSource", () => {
  test("reads exactly the requested byte range of a file", async () => {
    const whole = readFileSync(baseFile);
    const src = new FileByteSource(baseFile);
    try {
      assert.equal(await src.size(), whole.byteLength);
      const got = await src.read(1000, 4096);
      assert.deepEqual(Buffer.from(got), whole.subarray(1000, 5096));
      const tail = await src.read(whole.byteLength - 3, 3);
      assert.deepEqual(Buffer.from(tail), whole.subarray(whole.byteLength - 3));
    } finally {
      await src.close();
    }
  });

  test("reads into a caller-supplied buffer and returns a view of exactly length bytes", async () => {
    const whole = readFileSync(baseFile);
    const src = new FileByteSource(baseFile);
    const into = new Uint8Array(64);
    const got = await src.read(8, 16, into);
    await src.close();
    assert.equal(got.byteLength, 16);
    assert.equal(got.buffer, into.buffer);
    assert.deepEqual(Buffer.from(into.subarray(0, 16)), whole.subarray(8, 24));
  });

  test("a read past the end of the file is a CheckpointError saying the file is truncated", async () => {
    await withTempDir(async (dir) => {
      const p = join(dir, "short.bin");
      await writeFile(p, Buffer.alloc(10, 7));
      const src = new FileByteSource(p);
      await assert.rejects(src.read(4, 10), (err: unknown) => {
        assert.ok(err instanceof CheckpointError);
        assert.match(err.message, /truncated/);
        assert.match(err.message, /only 10 bytes/);
        return true;
      });
      await src.close();
    });
  });

  test("a missing file is a permanent CHECKPOINT_MISSING error naming the path", async () => {
    const src = new FileByteSource("/nonexistent/dir/model.safetensors");
    await assert.rejects(src.size(), (err: unknown) => {
      assert.ok(err instanceof CheckpointError);
      assert.equal(err.code, "CHECKPOINT_MISSING");
      assert.equal(err.retryable, false);
      assert.match(err.message, /\/nonexistent\/dir\/model\.safetensors/);
      return true;
    });
  });

  test("negative or fractional ranges are refused before any I/O", async () => {
    const src = new FileByteSource(baseFile);
    await assert.rejects(src.read(-1, 4), StorageError);
    await assert.rejects(src.read(0, 1.5), StorageError);
    await assert.rejects(src.read(0, 8, new Uint8Array(4)), StorageError);
    await src.close();
  });
});

describe("readFully", () => {
  test("loops over short reads until the buffer is full", async () => {
    const data = Uint8Array.from({ length: 50 }, (_, i) => i);
    let calls = 0;
    const fh = {
      async read(buf: Uint8Array, off: number, len: number, pos: number) {
        calls++;
        const n = Math.min(3, len, data.byteLength - pos);
        buf.set(data.subarray(pos, pos + n), off);
        return { bytesRead: n, buffer: buf };
      },
    } as unknown as FileHandle;
    const buf = new Uint8Array(20);
    await readFully(fh, "fake", "fake", buf, 10);
    assert.deepEqual([...buf], [...data.subarray(10, 30)]);
    assert.equal(calls, 7); // ceil(20 / 3)
  });
});

describe("FileHandlePool", () => {
  test("reuses one open handle per file and closes idle ones beyond maxOpen", async () => {
    await withTempDir(async (dir) => {
      const files = ["a", "b", "c"].map((n) => join(dir, n));
      for (const [i, f] of files.entries()) await writeFile(f, Buffer.from([i, i, i, i]));
      const pool = new FileHandlePool({ maxOpen: 2 });
      const seen = new Set<FileHandle>();
      for (let k = 0; k < 3; k++) await pool.use(files[0], async (fh) => void seen.add(fh));
      assert.equal(seen.size, 1);
      const a = new FileByteSource(files[0], { pool });
      const b = new FileByteSource(files[1], { pool });
      const c = new FileByteSource(files[2], { pool });
      assert.deepEqual([...(await b.read(1, 2))], [1, 1]);
      assert.deepEqual([...(await c.read(0, 1))], [2]);
      assert.equal(pool.openCount, 2);
      assert.deepEqual([...(await a.read(3, 1))], [0]); // reopened after eviction
      await pool.closeAll();
      assert.equal(pool.openCount, 0);
    });
  });
});
