import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { MergeloomError } from "../../proto/errors.js";
import { OutputDir, removeStaleOutputTemps } from "./output-dir.js";
import { withTempDir } from "./storage-test-support.js";

describe("OutputDir", () => {
  test("writes go to a temp dir next to the final path and appear there only on commit", async () => {
    await withTempDir(async (dir) => {
      const final = join(dir, "out", "merged");
      const out = await OutputDir.create(final);
      assert.equal(dirname(out.path), dirname(final));
      assert.match(basename(out.path), /^merged\.mergeloom-tmp-/);
      await writeFile(join(out.path, "config.json"), "{}");
      await mkdir(join(out.path, "sub"));
      await writeFile(join(out.path, "sub", "x"), "y");
      assert.equal(existsSync(final), false);
      await out.commit();
      assert.equal(readFileSync(join(final, "config.json"), "utf8"), "{}");
      assert.equal(readFileSync(join(final, "sub", "x"), "utf8"), "y");
      assert.deepEqual(readdirSync(join(dir, "out")), ["merged"]);
      await assert.rejects(out.commit(), /already committed/);
    });
  });

  test("an existing output without overwrite is OUTPUT_EXISTS telling how to proceed", async () => {
    await withTempDir(async (dir) => {
      const final = join(dir, "merged");
      await mkdir(final);
      await assert.rejects(OutputDir.create(final), (err: unknown) => {
        assert.ok(err instanceof MergeloomError);
        assert.equal(err.code, "OUTPUT_EXISTS");
        assert.match(err.message, /output .*merged exists; pass --overwrite or choose another path/);
        return true;
      });
      assert.deepEqual(readdirSync(dir), ["merged"]);
    });
  });

  test("with overwrite, commit replaces the old output and leaves no moved-aside copy", async () => {
    await withTempDir(async (dir) => {
      const final = join(dir, "merged");
      await mkdir(final);
      await writeFile(join(final, "old.txt"), "old");
      const out = await OutputDir.create(final, { overwrite: true });
      await writeFile(join(out.path, "new.txt"), "new");
      await out.commit();
      assert.deepEqual(readdirSync(final), ["new.txt"]);
      assert.deepEqual(readdirSync(dir), ["merged"]);
    });
  });

  test("an output created by someone else while merging is not clobbered without overwrite", async () => {
    await withTempDir(async (dir) => {
      const final = join(dir, "merged");
      const out = await OutputDir.create(final);
      await mkdir(final);
      await assert.rejects(out.commit(), (err: unknown) => (err as MergeloomError).code === "OUTPUT_EXISTS");
      await out.abort();
      assert.deepEqual(readdirSync(dir), ["merged"]);
    });
  });

  test("abort removes the temp dir, is idempotent, and leaves an existing output untouched", async () => {
    await withTempDir(async (dir) => {
      const final = join(dir, "merged");
      await mkdir(final);
      await writeFile(join(final, "keep.txt"), "keep");
      const out = await OutputDir.create(final, { overwrite: true });
      await writeFile(join(out.path, "partial"), "x");
      await out.abort();
      await out.abort();
      assert.equal(existsSync(out.path), false);
      assert.deepEqual(readdirSync(dir), ["merged"]);
      assert.equal(readFileSync(join(final, "keep.txt"), "utf8"), "keep");
      await assert.rejects(out.commit(), /already aborted/);
    });
  });
});

describe("removeStaleOutputTemps", () => {
  test("removes old leftovers of this output only, keeping recent temp dirs and other outputs", async () => {
    await withTempDir(async (dir) => {
      const final = join(dir, "merged");
      const old = join(dir, "merged.mergeloom-tmp-aaaaaa");
      const oldAside = join(dir, "merged.mergeloom-old-bbbbbb");
      const fresh = join(dir, "merged.mergeloom-tmp-cccccc");
      const other = join(dir, "other.mergeloom-tmp-dddddd");
      for (const d of [final, old, oldAside, fresh, other]) await mkdir(d);
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      for (const d of [old, oldAside, other]) await utimes(d, twoHoursAgo, twoHoursAgo);
      const removed = await removeStaleOutputTemps(final);
      assert.deepEqual(removed.sort(), [oldAside, old].sort());
      assert.deepEqual(readdirSync(dir).sort(), ["merged", "merged.mergeloom-tmp-cccccc", "other.mergeloom-tmp-dddddd"]);
    });
  });
});
