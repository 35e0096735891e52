/** A static file server with HTTP Range support on 127.0.0.1, like an object store's HTTP front. */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";

export async function startRangeServer(root: string): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let count = 0;
  const server: Server = createServer((req, res) => {
    count++;
    void (async () => {
      const rel = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^\/+/, "");
      if (rel.startsWith("..")) return void res.writeHead(403).end();
      const path = join(root, rel);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) return void res.writeHead(404).end();
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      if (!m) {
        res.writeHead(200, { "content-length": st.size, "accept-ranges": "bytes" });
        if (req.method === "HEAD") return void res.end();
        return void createReadStream(path).pipe(res);
      }
      const start = Number(m[1]);
      const end = Math.min(m[2] ? Number(m[2]) : st.size - 1, st.size - 1);
      if (start >= st.size) return void res.writeHead(416, { "content-range": `bytes */${st.size}` }).end();
      res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${st.size}`, "accept-ranges": "bytes" });
      if (req.method === "HEAD") return void res.end();
      createReadStream(path, { start, end }).pipe(res);
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
