/**
 * Issue 9 item 19: a stalled or slow-drip HTTP input fails in seconds (not 4 × 60 s), naming the
 * URL and byte range, with --http-timeout / --http-retries; a slow but steady transfer longer than
 * the timeout is not cut off. Real servers on 127.0.0.1.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile, mkdir, cp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StorageError } from "@mergeloom/engine/errors";
import { backoffDelayMs, HttpByteSource } from "@mergeloom/engine/storage";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";
import { startSlowServer } from "../harness/slow-http-server.js";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "mergeloom-http-stall-"));
  await mkdir(join(root, "m"));
  await writeFile(join(root, "blob.bin"), Buffer.alloc(1 << 20, 7));
  await cp(join(FIXTURES, "base"), join(root, "m"), { recursive: true });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("reading http inputs from a misbehaving server", () => {
  test("a slow-drip range fails within seconds, naming the URL and the byte range, after the configured retries", async () => {
    const server = await startSlowServer(root, { mode: "drip", dripMs: 100 });
    try {
      const url = `${server.url}/blob.bin`;
      const src = new HttpByteSource(url, { timeoutMs: 400, retries: 2, retryDelayMs: 10 });
      const t0 = Date.now();
      await assert.rejects(src.read(100, 4096), (err: unknown) => {
        assert.ok(err instanceof StorageError, String(err));
        assert.equal(err.retryable, true);
        assert.ok(err.message.includes(`read ${url} bytes 100-4195: failed after 3 attempts (--http-retries 2): stalled`), err.message);
        return true;
      });
      assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
      assert.equal(server.requests().filter((r) => r.includes("bytes=100-4195")).length, 3);
    } finally {
      await server.close();
    }
  });

  test("a server that never answers fails the same way, saying no data came", async () => {
    const server = await startSlowServer(root, { mode: "silent" });
    try {
      const url = `${server.url}/blob.bin`;
      const src = new HttpByteSource(url, { timeoutMs: 300, retries: 1, retryDelayMs: 10 });
      await assert.rejects(src.read(0, 1000), (err: unknown) => {
        assert.ok(err instanceof StorageError);
        assert.match(err.message, /bytes 0-999: failed after 2 attempts .*stalled: no data in 0\.3 s/);
        return true;
      });
    } finally {
      await server.close();
    }
  });

  test("a steady transfer that takes longer than the timeout is not cut off", async () => {
    // 32 KiB every 100 ms: 640 KiB take about 2 s, four times the 500 ms timeout.
    const server = await startSlowServer(root, { mode: "steady", chunkBytes: 32 * 1024, dripMs: 100 });
    try {
      const src = new HttpByteSource(`${server.url}/blob.bin`, { timeoutMs: 500, retries: 0 });
      const got = await src.read(0, 640 * 1024);
      assert.deepEqual(Buffer.from(got), readFileSync(join(root, "blob.bin")).subarray(0, 640 * 1024));
    } finally {
      await server.close();
    }
  });

  test("retry delays use full jitter: uniform in [0, base·2^i], capped at 30 s", () => {
    assert.equal(
      backoffDelayMs(0, 200, () => 0),
      0,
    );
    assert.equal(
      backoffDelayMs(0, 200, () => 0.5),
      100,
    );
    assert.equal(
      backoffDelayMs(3, 200, () => 1),
      1600,
    );
    assert.equal(
      backoffDelayMs(20, 200, () => 1),
      30_000,
    );
  });

  test("mergeloom plan with --http-timeout 1 --http-retries 1 on a dripping server fails in seconds with one line naming URL and range", async () => {
    // Everything drips, so the first header read (bytes 0-...) stalls.
    const server = await startSlowServer(root, { mode: "drip", dripMs: 400 });
    try {
      const cfg = join(root, "http.yml");
      await writeFile(cfg, `merge_method: linear\nmodels:\n  - model: ${server.url}/m/\n    parameters: { weight: 1.0 }\n`);
      const t0 = Date.now();
      const r = await runCli(["plan", cfg, "--http-timeout", "1", "--http-retries", "1"], { timeoutMs: 30_000 });
      const secs = (Date.now() - t0) / 1000;
      assert.equal(r.code, 1, r.stderr);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0],
        new RegExp(`^mergeloom: read ${server.url}/m/\\S+ (bytes \\d+-\\d+|whole file): failed after 2 attempts \\(--http-retries 1\\): stalled`),
      );
      assert.ok(secs < 20, `took ${secs} s (it was 244–258 s before the read timeout existed)`);
    } finally {
      await server.close();
    }
  });
});
