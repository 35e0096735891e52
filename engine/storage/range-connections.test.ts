import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { MergeloomError } from "@mergeloom/proto/errors";
import { RangeConnections } from "./range-connections.js";
import { StallWatch } from "./http-stall-watch.js";

const DATA = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7 + (i >> 9)) & 0xff));

interface Served {
  url: string;
  server: Server;
  connections: number;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1; `handler` answers each request. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Served> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  const s: Served = { url: "", server, connections: 0, close: () => new Promise((r) => (sockets.forEach((k) => k.destroy()), server.close(() => r()))) };
  server.on("connection", (sock: Socket) => (s.connections++, sockets.add(sock), sock.on("close", () => sockets.delete(sock))));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return s;
}

/** Answers Range requests on DATA as a file server does (206, Content-Length, Content-Range). */
function ranges(req: IncomingMessage, res: ServerResponse): void {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!;
  const [a, b] = [Number(m[1]), Number(m[2])];
  res.writeHead(206, { "content-length": b - a + 1, "content-range": `bytes ${a}-${b}/${DATA.length}` });
  res.end(DATA.subarray(a, b + 1));
}

test("a range lands in the caller's buffer, and the next read reuses the kept-alive connection", async () => {
  const s = await serve(ranges);
  const c = new RangeConnections();
  try {
    for (const [off, len] of [
      [0, 1 << 20],
      [12345, 300_000],
      [DATA.length - 10, 10],
    ]) {
      const dest = new Uint8Array(len);
      assert.deepEqual(await c.read(`${s.url}/f`, {}, off, dest), { ok: true });
      assert.ok(Buffer.from(dest).equals(DATA.subarray(off, off + len)), `bytes ${off}+${len}`);
    }
    assert.equal(s.connections, 1);
  } finally {
    c.close();
    await s.close();
  }
});

test("request headers go out as given, with the Range", async () => {
  let seen: IncomingMessage["headers"] = {};
  const s = await serve((req, res) => ((seen = req.headers), ranges(req, res)));
  const c = new RangeConnections();
  try {
    await c.read(`${s.url}/f?sig=1`, { authorization: "Bearer t", "user-agent": "mergeloom/test" }, 5, new Uint8Array(3));
    assert.equal(seen.authorization, "Bearer t");
    assert.equal(seen["user-agent"], "mergeloom/test");
    assert.equal(seen.range, "bytes=5-7");
    assert.equal(seen.host, new URL(s.url).host);
  } finally {
    c.close();
    await s.close();
  }
});

test("anything but a plain 206 of the asked range is handed back with its status and headers, on a closed connection", async () => {
  const answers: Array<(res: ServerResponse) => void> = [
    (res) => res.writeHead(302, { location: "http://storage/x" }).end(),
    (res) => res.writeHead(200, { "content-length": DATA.length }).end(DATA),
    (res) => (res.writeHead(206, { "content-range": `bytes 0-9/${DATA.length}`, "transfer-encoding": "chunked" }), res.end(DATA.subarray(0, 10))),
    (res) => res.writeHead(206, { "content-length": 10, "content-range": `bytes 1-10/${DATA.length}` }).end(DATA.subarray(1, 11)),
    (res) => res.writeHead(503, { "retry-after": "2" }).end("busy"),
  ];
  let i = 0;
  const s = await serve((_req, res) => answers[i++](res));
  const c = new RangeConnections();
  try {
    const got = [];
    for (let k = 0; k < answers.length; k++) {
      const a = await c.read(`${s.url}/f`, {}, 0, new Uint8Array(10));
      assert.equal(a.ok, false);
      if (!a.ok) got.push([a.status, a.header("location") ?? a.header("retry-after") ?? null]);
    }
    assert.deepEqual(got, [
      [302, "http://storage/x"],
      [200, null],
      [206, null],
      [206, null],
      [503, "2"],
    ]);
    assert.equal(s.connections, answers.length, "a connection that gave an answer it did not read is not reused");
  } finally {
    c.close();
    await s.close();
  }
});

test("a kept-alive connection the server closed meanwhile is replaced without an error", async () => {
  // The server ends each connection shortly after answering on it, as an idle keep-alive timeout does.
  const s = await serve((req, res) => (ranges(req, res), res.on("finish", () => setTimeout(() => req.socket.end(), 20))));
  const c = new RangeConnections();
  try {
    await c.read(`${s.url}/f`, {}, 0, new Uint8Array(100));
    await new Promise((r) => setTimeout(r, 200));
    const dest = new Uint8Array(100);
    assert.deepEqual(await c.read(`${s.url}/f`, {}, 100, dest), { ok: true });
    assert.ok(Buffer.from(dest).equals(DATA.subarray(100, 200)));
    assert.equal(s.connections, 2);
  } finally {
    c.close();
    await s.close();
  }
});

test("a body cut short fails as retryable, naming how much arrived", async () => {
  const s = await serve((_req, res) => {
    res.writeHead(206, { "content-length": 1000, "content-range": `bytes 0-999/${DATA.length}` });
    res.write(DATA.subarray(0, 400), () => res.socket?.destroy());
  });
  const c = new RangeConnections();
  try {
    await assert.rejects(c.read(`${s.url}/f`, {}, 0, new Uint8Array(1000)), (e: unknown) => {
      assert.ok(e instanceof MergeloomError && e.retryable);
      assert.match((e as Error).message, /connection failed after 400 of 1000 bytes/);
      return true;
    });
  } finally {
    c.close();
    await s.close();
  }
});

test("a server that sends headers and then nothing is aborted by the stall watch", async () => {
  const s = await serve((_req, res) => {
    res.writeHead(206, { "content-length": 1000, "content-range": `bytes 0-999/${DATA.length}` });
    res.flushHeaders();
  });
  const c = new RangeConnections();
  const watch = new StallWatch(`read ${s.url}/f bytes 0-999`, 150, 1000);
  try {
    await assert.rejects(c.read(`${s.url}/f`, {}, 0, new Uint8Array(1000), watch), /stalled: no data in 0.15 s/);
  } finally {
    watch.stop();
    c.close();
    await s.close();
  }
});
