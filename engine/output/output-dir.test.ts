import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { hostname } from "node:os";
import { MergeloomError } from "@mergeloom/proto/errors";
import { OUTPUT_MARKER, OutputDir, removeStaleOutputTemps } from "./output-dir.js";

/** What an earlier mergeloom output carries: only --overwrite of such a directory is allowed. */
async function markAsOutput(dir: string): Promise<void> {
  await writeFile(join(dir, OUTPUT_MARKER), JSON.stringify({ tool: "mergeloom", jobId: "earlier", pid: 1, host: "h", createdAt: 0 }));
}
import { withTempDir } from "../storage/storage-test-support.js";

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
      await markAsOutput(final);
      await writeFile(join(final, "old.json"), "old");
      const out = await OutputDir.create(final, { overwrite: true, jobId: "j2" });
      await writeFile(join(out.path, "new.json"), "new");
      await out.commit();
      assert.deepEqual(readdirSync(final).sort(), [OUTPUT_MARKER, "new.json"]);
      assert.equal(JSON.parse(readFileSync(join(final, OUTPUT_MARKER), "utf8")).jobId, "j2");
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
      await markAsOutput(final);
      await writeFile(join(final, "keep.json"), "keep");
      const out = await OutputDir.create(final, { overwrite: true });
      await writeFile(join(out.path, "partial"), "x");
      await out.abort();
      await out.abort();
      assert.equal(existsSync(out.path), false);
      assert.deepEqual(readdirSync(dir), ["merged"]);
      assert.equal(readFileSync(join(final, "keep.json"), "utf8"), "keep");
      await assert.rejects(out.commit(), /already aborted/);
    });
  });
});

describe("OutputDir safety", () => {
  test("the temp dir carries a marker naming the job and its owner, and the lock lives until commit", async () => {
    await withTempDir(async (dir) => {
      const final = join(dir, "merged");
      const out = await OutputDir.create(final, { jobId: "job-1" });
      const marker = JSON.parse(readFileSync(join(out.path, OUTPUT_MARKER), "utf8"));
      assert.equal(marker.tool, "mergeloom");
      assert.equal(marker.jobId, "job-1");
      assert.equal(marker.pid, process.pid);
      assert.equal(marker.host, hostname());
      assert.ok(existsSync(`${final}.mergeloom-lock`));
      await assert.rejects(OutputDir.create(final), (err: unknown) => (err as MergeloomError).code === "OUTPUT_LOCKED");
      await out.commit();
      assert.deepEqual(readdirSync(dir), ["merged"]);
    });
  });

  test("overwrite refuses a directory without the marker and a marked one holding other files, and keeps both intact", async () => {
    await withTempDir(async (dir) => {
      const plain = join(dir, "plain");
      await mkdir(plain);
      await writeFile(join(plain, "README.md"), "tags: [mergeloom]");
      await assert.rejects(OutputDir.create(plain, { overwrite: true }), (err: unknown) => {
        assert.equal((err as MergeloomError).code, "OUTPUT_UNSAFE");
        assert.match((err as Error).message, /is not a mergeloom output \(no \.mergeloom-output marker\)/);
        return true;
      });
      const mixed = join(dir, "mixed");
      await mkdir(join(mixed, "runs"), { recursive: true });
      await markAsOutput(mixed);
      await assert.rejects(OutputDir.create(mixed, { overwrite: true }), /holds files that are not part of a model output \(runs\/\)/);
      assert.deepEqual(readdirSync(dir).sort(), ["mixed", "plain"]);
      assert.deepEqual(readdirSync(plain), ["README.md"]);
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
