/**
 * A Range-capable file server on 127.0.0.1 that misbehaves on purpose: ranges starting at or past
 * `slowFrom` are answered slowly — "drip" sends one byte every `dripMs`, "stall" sends the headers
 * and then nothing, "silent" never answers. Earlier ranges (safetensors headers, config.json) are
 * served normally, so planning works and the merge stalls on tensor data.
 */
import { readFile } from "node:fs/promises";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join, normalize } from "node:path";

export interface SlowServerOptions {
  mode: "drip" | "stall" | "silent" | "steady";
  /** Byte offset from which ranges are slow (default 0: every range). */
  slowFrom?: number;
  /** drip: ms between bytes; steady: ms between chunks. */
  dripMs?: number;
  /** steady: bytes per chunk. */
  chunkBytes?: number;
}

export async function startSlowServer(root: string, opts: SlowServerOptions): Promise<{ url: string; requests: () => string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    void (async () => {
      const rel = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^\/+/, "");
      seen.push(`${req.method} /${rel} ${req.headers.range ?? ""}`);
      const data = await readFile(join(root, rel)).catch(() => undefined);
      if (!data) return void res.writeHead(404).end();
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      const start = m ? Number(m[1]) : 0;
      const end = m ? Math.min(m[2] ? Number(m[2]) : data.length - 1, data.length - 1) : data.length - 1;
      const body = data.subarray(start, end + 1);
      const head = m
        ? { status: 206, headers: { "content-length": body.length, "content-range": `bytes ${start}-${end}/${data.length}` } }
        : { status: 200, headers: { "content-length": body.length } };
      if (start < (opts.slowFrom ?? 0) || req.method === "HEAD") {
        res.writeHead(head.status, head.headers);
        return void res.end(req.method === "HEAD" ? undefined : body);
      }
      if (opts.mode === "silent") return; // never answer
      res.writeHead(head.status, head.headers);
      res.flushHeaders();
      if (opts.mode === "stall") return; // headers, then nothing
      const step = opts.mode === "drip" ? 1 : (opts.chunkBytes ?? 32 * 1024);
      send(res, body, step, opts.dripMs ?? 100, timers);
    })();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => seen.slice(),
    close: () =>
      new Promise((r) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function send(res: ServerResponse, body: Buffer, step: number, everyMs: number, timers: Set<NodeJS.Timeout>): void {
  let at = 0;
  const tick = () => {
    if (res.destroyed) return;
    res.write(body.subarray(at, at + step));
    at += step;
    if (at >= body.length) return void res.end();
    const t = setTimeout(tick, everyMs);
    timers.add(t);
  };
  tick();
}
