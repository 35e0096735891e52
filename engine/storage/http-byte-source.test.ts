import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { CheckpointError, StorageError } from "../errors/index.js";
import { openCheckpoint } from "./checkpoint.js";
import { HttpByteSource } from "./http-byte-source.js";
import { fixtureDir } from "./storage-test-support.js";

const FIX = fixtureDir();

/** A static file server over the fixtures with Range support and switchable misbehaviour. */
interface ServerState {
  ignoreRange: boolean;
  failNext: number;
  failStatus: number;
  /** Files served shorter than they are, to emulate a truncated upload. */
  truncateTo: Map<string, number>;
  ranges: Array<{ path: string; start: number; end: number }>;
}

const state: ServerState = { ignoreRange: false, failNext: 0, failStatus: 503, truncateTo: new Map(), ranges: [] };
let server: Server;
let base: string;

before(async () => {
  server = createServer((req, res) => {
    if (state.failNext > 0) {
      state.failNext--;
      res.writeHead(state.failStatus).end("try later");
      return;
    }
    const rel = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^\/+/, "");
    let data: Buffer;
    try {
      data = readFileSync(join(FIX, rel));
    } catch {
      res.writeHead(404).end("not found");
      return;
    }
    const cut = state.truncateTo.get(rel);
    if (cut !== undefined) data = data.subarray(0, cut);
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (req.method === "HEAD") {
      res.writeHead(200, { "Content-Length": data.byteLength, "Accept-Ranges": "bytes" }).end();
      return;
    }
    if (!range || state.ignoreRange) {
      res.writeHead(200, { "Content-Length": data.byteLength }).end(data);
      return;
    }
    const start = Number(range[1]);
    if (start >= data.byteLength) {
      res.writeHead(416, { "Content-Range": `bytes */${data.byteLength}` }).end();
      return;
    }
    const end = Math.min(Number(range[2]), data.byteLength - 1);
    state.ranges.push({ path: rel, start, end });
    res.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${data.byteLength}`, "Content-Length": end - start + 1 }).end(data.subarray(start, end + 1));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function reset(): void {
  state.ignoreRange = false;
  state.failNext = 0;
  state.failStatus = 503;
  state.truncateTo.clear();
  state.ranges = [];
}

const fast = { retries: 2, retryDelayMs: 1 };

describe("HttpByteSource", () => {
  test("reads exactly the requested range with Range requests and learns the size from Content-Range", async () => {
    reset();
    const whole = readFileSync(join(FIX, "base", "model.safetensors"));
    const src = new HttpByteSource(base + "base/model.safetensors", fast);
    assert.equal(await src.size(), whole.byteLength);
    assert.deepEqual(Buffer.from(await src.read(12345, 1000)), whole.subarray(12345, 13345));
    const into = new Uint8Array(10);
    await src.read(whole.byteLength - 10, 10, into);
    assert.deepEqual(Buffer.from(into), whole.subarray(whole.byteLength - 10));
  });

  test("a server that ignores Range (200) is a permanent error, not a full download", async () => {
    reset();
    state.ignoreRange = true;
    const src = new HttpByteSource(base + "base/model.safetensors", fast);
    for (const op of [() => src.size(), () => src.read(0, 8)]) {
      await assert.rejects(op(), (err: unknown) => {
        assert.ok(err instanceof StorageError);
        assert.equal(err.retryable, false);
        assert.match(err.message, /answered 200 to a Range request instead of 206/);
        return true;
      });
    }
  });

  test("transient 503 answers are retried and the read then succeeds", async () => {
    reset();
    state.failNext = 2;
    const whole = readFileSync(join(FIX, "base", "model.safetensors"));
    const src = new HttpByteSource(base + "base/model.safetensors", fast);
    assert.deepEqual(Buffer.from(await src.read(0, 8)), whole.subarray(0, 8));
    assert.equal(state.failNext, 0);
  });

  test("when retries run out the error is a retryable StorageError saying how many attempts were made", async () => {
    reset();
    state.failNext = 10;
    const src = new HttpByteSource(base + "base/model.safetensors", fast);
    await assert.rejects(src.read(0, 8), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.equal(err.retryable, true);
      // One line naming the URL, the range, the attempts and the flag that sets them.
      assert.match(
        err.message,
        /^read http:\/\/127\.0\.0\.1:\d+\/base\/model\.safetensors bytes 0-7: failed after 3 attempts \(--http-retries 2\): .*503[^\n]*$/,
      );
      return true;
    });
    assert.equal(state.failNext, 7, "1 attempt + 2 retries");
  });

  test("a 404 is a permanent CHECKPOINT_MISSING error and is not retried", async () => {
    reset();
    const src = new HttpByteSource(base + "base/nothing.safetensors", fast);
    await assert.rejects(src.size(), (err: unknown) => err instanceof CheckpointError && err.code === "CHECKPOINT_MISSING" && !err.retryable);
  });

  test("a range past the end of a truncated remote file is a CheckpointError saying it is truncated", async () => {
    reset();
    state.truncateTo.set("base/model.safetensors", 5000);
    const src = new HttpByteSource(base + "base/model.safetensors", fast);
    await assert.rejects(src.read(4990, 100), (err: unknown) => err instanceof CheckpointError && /truncated/.test(err.message));
    const src2 = new HttpByteSource(base + "base/model.safetensors", fast);
    await assert.rejects(src2.read(6000, 10), (err: unknown) => err instanceof CheckpointError && /only 5000 bytes/.test(err.message));
  });

  test("a connection refused is retried and surfaces as a retryable StorageError", async () => {
    const src = new HttpByteSource("http://127.0.0.1:1/model.safetensors", { retries: 1, retryDelayMs: 1 });
    await assert.rejects(src.size(), (err: unknown) => err instanceof StorageError && err.retryable && /failed after 2 attempts/.test(err.message));
  });
});

describe("openCheckpoint over HTTP", () => {
  for (const model of ["base", "expert-sub"]) {
    test(`${model} opened over HTTP has the same tensors as the local read, reading only headers`, async () => {
      reset();
      const local = await openCheckpoint(join(FIX, model));
      const remote = await openCheckpoint(`${base}${model}`, { http: fast });
      assert.equal(remote.location, `${base}${model}/`);
      assert.deepEqual(remote.config, local.config);
      assert.equal(remote.files.length, local.files.length);
      assert.equal(remote.tensors.size, local.tensors.size);
      for (const [name, t] of local.tensors) {
        const r = remote.tensors.get(name);
        assert.ok(r, name);
        assert.deepEqual({ ...r, uri: r.uri.slice(base.length) }, { ...t, uri: t.uri.slice(FIX.length + 1) });
      }
      // Only the length prefix and the JSON header of each shard were fetched.
      const firstData = new Map<string, number>();
      for (const t of local.tensors.values()) {
        const rel = t.uri.slice(FIX.length + 1);
        firstData.set(rel, Math.min(firstData.get(rel) ?? Infinity, t.offset));
      }
      assert.ok(state.ranges.length > 0);
      for (const r of state.ranges) assert.ok(r.end < firstData.get(r.path)!, `fetched ${r.path} ${r.start}-${r.end}, beyond the header`);
    });
  }

  test("a base URL with neither model.safetensors nor an index says what was expected", async () => {
    reset();
    await assert.rejects(openCheckpoint(`${base}eval/`, { http: fast }), (err: unknown) => {
      assert.ok(err instanceof CheckpointError);
      assert.equal(err.code, "CHECKPOINT_MISSING");
      assert.match(err.message, /no model\.safetensors or model\.safetensors\.index\.json at/);
      return true;
    });
  });
});
