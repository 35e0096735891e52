import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TensorIO } from "./tensor-io.js";

const dir = mkdtempSync(join(tmpdir(), "mergeloom-tensor-io-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("tensor I/O descriptors", () => {
  test("write descriptors live for one job and read descriptors stay bounded across many jobs", async () => {
    const io = new TensorIO();
    for (let job = 0; job < 100; job++) {
      const input = join(dir, `in${job}`);
      const out = join(dir, `out${job}`);
      writeFileSync(input, Uint8Array.of(job, 1, 2, 3));
      writeFileSync(out, new Uint8Array(4));
      const buf = new Uint8Array(4);
      await io.read(input, 0, 4, buf);
      io.write(
        out,
        0,
        buf.map((x) => x + 1),
      );
      io.endJob();
      assert.deepEqual([...readFileSync(out)], [job + 1, 2, 3, 4]);
      assert.ok(io.openCount <= 32, `job ${job}: ${io.openCount} descriptors open`);
    }
    // Reads after evictions still work (the newest descriptor is never the one evicted).
    const buf = new Uint8Array(4);
    await io.read(join(dir, "in0"), 0, 4, buf);
    assert.deepEqual([...buf], [0, 1, 2, 3]);
    io.close();
    assert.equal(io.openCount, 0);
  });

  test("an output shard that is a symlink is refused", () => {
    const io = new TensorIO();
    writeFileSync(join(dir, "target"), new Uint8Array(4));
    symlinkSync(join(dir, "target"), join(dir, "link"));
    assert.throws(() => io.write(join(dir, "link"), 0, new Uint8Array(4)), /symlink/);
    assert.deepEqual([...readFileSync(join(dir, "target"))], [0, 0, 0, 0]);
    io.close();
  });
});
