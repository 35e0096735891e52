/**
 * Keep-alive HTTP/1.1 connections that read a Range answer's body straight into the caller's
 * buffer: the socket is opened with `onread`, whose buffer is the unfilled rest of the
 * destination, so the kernel copies the bytes once, to where the merge needs them.
 *
 * Why not undici (used for everything else): its body arrives as one freshly allocated 64 KiB
 * Buffer per socket read. At merge rates that is ~16,000 allocations per GB, each on new pages
 * (page faults, zeroing) and each traced by the GC while a block holds it. Measured on the test Hub
 * (`.bench`-style loop, 8 MiB ranges, 2 in flight, 1.05 GB): undici `request` 0.66 GB/s at 1.32
 * client CPU-seconds per GB; this reader 1.19 GB/s at 0.54 (the server then limits).
 *
 * Deliberately narrow: only a `206` with `Content-Length` equal to the range and a matching
 * `Content-Range` is read here. Anything else (a redirect, an error status, chunked or encoded
 * bodies) is handed back as `{ status, header }` with the connection closed, and the caller goes
 * through its general client, which owns redirects, typed errors and retries.
 */
import net from "node:net";
import tls from "node:tls";
import { StorageError } from "../errors/index.js";
import type { StallWatch } from "./http-stall-watch.js";

/** The whole header block must fit: real CDNs send 1–4 KiB. */
const MAX_HEADER_BYTES = 64 << 10;
/** Idle connections are closed before the usual server keep-alive timeout (5 s for Node, nginx 75 s). */
const IDLE_MS = 4000;
const MAX_IDLE_PER_ORIGIN = 32;

export type RangeAnswer = { ok: true } | { ok: false; status: number; header(name: string): string | undefined };

interface Pending {
  dest: Uint8Array;
  offset: number;
  watch?: StallWatch;
  onBytes?: (n: number) => void;
  resolve(a: RangeAnswer): void;
  reject(e: Error): void;
  /** Bytes of this response seen so far (headers included): a reused connection that fails at 0 is retried once, fresh. */
  seen: number;
}

class Connection {
  readonly socket: net.Socket;
  private head = Buffer.allocUnsafe(MAX_HEADER_BYTES);
  private headLen = 0;
  private inBody = false;
  private got = 0;
  private pending?: Pending;
  private keepAlive = true;
  idleTimer?: NodeJS.Timeout;
  used = false;
  closed = false;

  constructor(
    readonly origin: string,
    url: URL,
    private readonly onIdle: (c: Connection) => void,
  ) {
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const onread: net.OnReadOpts = { buffer: () => this.target(), callback: (n: number) => (this.onData(n), true) };
    // tls.connect takes `onread` too (Node ≥ 12.?), though its typings do not say so.
    const secure: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host: url.hostname,
      port,
      servername: net.isIP(url.hostname) ? undefined : url.hostname,
      ALPNProtocols: ["http/1.1"],
      onread,
    };
    this.socket = url.protocol === "https:" ? tls.connect(secure) : net.connect({ host: url.hostname, port, onread });
    this.socket.setNoDelay(true);
    this.socket.on("error", (e) => this.fail(e));
    this.socket.on("close", () => this.fail(new Error("connection closed by the server")));
  }

  /** Where the next socket read lands: the rest of the destination while in a body, else the header buffer. */
  private target(): Uint8Array {
    if (this.inBody && this.pending) return this.pending.dest.subarray(this.got);
    if (this.headLen >= this.head.byteLength) return this.head.subarray(0, 1); // never reached: onData failed the request
    return this.head.subarray(this.headLen);
  }

  send(path: string, host: string, headers: Record<string, string>, p: Pending): void {
    this.used = true;
    this.pending = p;
    this.headLen = 0;
    this.got = 0;
    this.inBody = false;
    clearTimeout(this.idleTimer);
    this.socket.ref();
    p.watch?.signal.addEventListener("abort", this.abort, { once: true });
    let req = `GET ${path} HTTP/1.1\r\nhost: ${host}\r\nrange: bytes=${p.offset}-${p.offset + p.dest.byteLength - 1}\r\naccept-encoding: identity\r\n`;
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    this.socket.write(req + "\r\n");
  }

  private readonly abort = () => this.fail(this.pending?.watch?.stalled ?? new Error("aborted"));

  private onData(n: number): void {
    const p = this.pending;
    if (!p) return void this.destroy(); // bytes nobody asked for: the connection cannot be trusted
    p.seen += n;
    if (this.inBody) {
      this.got += n;
      p.watch?.progress(n);
      p.onBytes?.(n);
    } else {
      this.headLen += n;
      const end = this.head.subarray(0, this.headLen).indexOf("\r\n\r\n", 0, "latin1");
      if (end < 0) {
        if (this.headLen >= this.head.byteLength) this.fail(new StorageError(`response headers longer than ${MAX_HEADER_BYTES} bytes`, { retryable: true }));
        return;
      }
      p.watch?.headers();
      if (!this.startBody(p, this.head.toString("latin1", 0, end), end + 4)) return;
    }
    if (this.got >= p.dest.byteLength) this.finish({ ok: true });
  }

  /** Parses the header block; false when the request is settled (handed back or failed). */
  private startBody(p: Pending, block: string, bodyStart: number): boolean {
    const lines = block.split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1];
    const fields = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      if (i > 0) {
        const k = l.slice(0, i).trim().toLowerCase();
        if (!fields.has(k)) fields.set(k, l.slice(i + 1).trim());
      }
    }
    const header = (name: string) => fields.get(name);
    const last = p.offset + p.dest.byteLength - 1;
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header("content-range") ?? "");
    const plain =
      status === "206" &&
      Number(header("content-length")) === p.dest.byteLength &&
      cr !== null &&
      Number(cr[1]) === p.offset &&
      Number(cr[2]) === last &&
      !header("transfer-encoding") &&
      (header("content-encoding") ?? "identity") === "identity";
    if (!plain) {
      // Not ours to read: close (its body may be anything) and let the general client ask again.
      this.finish({ ok: false, status: Number(status ?? 0), header });
      this.destroy();
      return false;
    }
    this.keepAlive = !/\bclose\b/i.test(header("connection") ?? "") && lines[0].startsWith("HTTP/1.1");
    const early = this.headLen - bodyStart;
    if (early > p.dest.byteLength) {
      this.fail(new StorageError(`the server sent more than the ${p.dest.byteLength} bytes requested`, { retryable: true }));
      return false;
    }
    p.dest.set(this.head.subarray(bodyStart, this.headLen), 0);
    this.got = early;
    this.inBody = true;
    p.watch?.progress(early);
    p.onBytes?.(early);
    return true;
  }

  private finish(a: RangeAnswer): void {
    const p = this.pending!;
    this.pending = undefined;
    this.inBody = false;
    this.headLen = 0;
    p.watch?.signal.removeEventListener("abort", this.abort);
    p.resolve(a);
    if (a.ok) {
      if (this.keepAlive) this.onIdle(this);
      else this.destroy();
    }
  }

  fail(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    this.destroy();
    if (!p) return;
    p.watch?.signal.removeEventListener("abort", this.abort);
    p.reject(Object.assign(e, { bytesSeen: p.seen, bodyBytes: this.got }));
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.socket.destroy();
  }
}

export class RangeConnections {
  private readonly idle = new Map<string, Connection[]>();

  /**
   * Reads bytes [offset, offset + dest.length) of `url` into `dest`. Resolves `{ ok: true }` when
   * the body filled `dest`, or the status and headers of any other answer (the caller falls
   * back); rejects on connection failures (retryable) and when `watch` aborts.
   */
  async read(
    url: string,
    headers: Record<string, string>,
    offset: number,
    dest: Uint8Array,
    watch?: StallWatch,
    onBytes?: (n: number) => void,
  ): Promise<RangeAnswer> {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new StorageError(`read ${url}: not an http(s) URL`);
    const path = u.pathname + u.search;
    for (let attempt = 0; ; attempt++) {
      const conn = this.take(u);
      const reused = conn.used;
      try {
        return await new Promise<RangeAnswer>((resolve, reject) =>
          conn.send(path, u.host, headers, { dest, offset, watch, onBytes, resolve, reject, seen: 0 }),
        );
      } catch (err) {
        const e = err as Error & { bytesSeen?: number; bodyBytes?: number };
        // A kept-alive connection the server had already closed: nothing was answered, ask again on a new one.
        if (reused && e.bytesSeen === 0 && attempt === 0 && !watch?.signal.aborted) continue;
        if (watch?.stalled) throw watch.stalled;
        throw new StorageError(`connection failed after ${e.bodyBytes ?? 0} of ${dest.byteLength} bytes (${e.message})`, { cause: e, retryable: true });
      }
    }
  }

  /** Closes idle connections (tests, shutdown); connections in use close when their answer ends. */
  close(): void {
    for (const list of this.idle.values()) for (const c of list) c.destroy();
    this.idle.clear();
  }

  private take(u: URL): Connection {
    const origin = `${u.protocol}//${u.host}`;
    const list = this.idle.get(origin);
    while (list?.length) {
      const c = list.pop()!;
      if (!c.closed) return c;
    }
    return new Connection(origin, u, (c) => this.release(c));
  }

  private release(c: Connection): void {
    const list = this.idle.get(c.origin) ?? [];
    this.idle.set(c.origin, list);
    if (list.length >= MAX_IDLE_PER_ORIGIN) return void c.destroy();
    list.push(c);
    c.socket.unref();
    c.idleTimer = setTimeout(() => {
      c.destroy();
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
    }, IDLE_MS);
    c.idleTimer.unref();
  }
}
