/**
 * A Hugging Face Hub–compatible server on 127.0.0.1 for tests and benchmarks (HF_ENDPOINT points
 * at it). It serves directories as commits of repositories, with branches and tags:
 *
 *   GET  /api/models/{org}/{name}/revision/{rev}[?blobs=true]  → { id, sha, siblings: [{ rfilename, size, blobId, lfs }] }
 *   HEAD/GET /{org}/{name}/resolve/{rev}/{path}                → small files: 200 (Range honoured), ETag = git blob id;
 *        LFS files (*.safetensors): 302 to a separate storage server (another port, so another host),
 *        with X-Repo-Commit, X-Linked-Etag (sha256), X-Linked-Size, ETag
 *   GET  {storage}/lfs/{sha256}                                → the bytes, HTTP Range
 *
 * Gated repos need `Authorization: Bearer <token>` (401 without, 403 with a wrong one); missing
 * repos, revisions and files answer 404 with X-Error-Code as the Hub does. Faults on demand: a 429
 * on every Nth request, a connection reset mid-body on every Nth storage read. Counters: requests,
 * bytes served, bytes of safetensors *tensor data* served (past the header), Authorization headers
 * seen by the storage host (must be 0: the token stays with the Hub).
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, relative } from "node:path";

interface HubFile {
  path: string;
  disk: string;
  size: number;
  lfs: boolean;
  /** sha256 (LFS) or git blob sha1. */
  etag: string;
  /** For safetensors: where tensor data starts. */
  dataStart?: number;
  /** The bytes, when the server was started with `serveFromMemory`. */
  memory?: Buffer;
}

export interface TestHubOptions {
  /**
   * Serve file bodies from memory (each file read once, on its first request) rather than
   * streaming them from disk per request — what a CDN edge does for hot objects. Benchmarks use
   * it so that the stand-in server, which shares the machine's cores with the merge it serves,
   * spends its CPU on sending bytes, not on reading them again. Files over 4 GiB still stream.
   */
  serveFromMemory?: boolean;
  /** Each request (Hub and storage) is answered this many ms late: a WAN round trip, for benchmarks. */
  latencyMs?: number;
}

interface Repo {
  gated: boolean;
  refs: Map<string, string>;
  commits: Map<string, Map<string, HubFile>>;
}

export interface HubServerCounters {
  requests: number;
  bytesServed: number;
  tensorBytesServed: number;
  storageAuthHeaders: number;
  throttled: number;
  resets: number;
}

export interface TestHub {
  url: string;
  storageUrl: string;
  counters: HubServerCounters;
  resetCounters(): void;
  /** Adds a commit built from the files of `dir` (recursively); returns its sha. */
  addCommit(repo: string, dir: string, opts?: { branch?: string; tags?: string[]; unhashed?: boolean }): Promise<string>;
  setRef(repo: string, ref: string, sha: string): void;
  gate(repo: string, token: string): void;
  /**
   * Faults: a 429 on every Nth request (0 = off), a reset on every Nth storage body (0 = off), a
   * 503 on every request whose path contains one of `failPaths`.
   */
  faults: { throttleEvery: number; resetEvery: number; failPaths: string[] };
  /** Requests seen per `METHOD path range` (tests count retries). */
  hits: Map<string, number>;
  close(): Promise<void>;
}

/** Larger files (the sparse 70B-shaped shards) stream from disk even with `serveFromMemory`. */
const MEMORY_FILE_MAX = 4 << 30;

const LFS = /\.(safetensors|bin|onnx|model)$/;

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function hashFile(path: string, algo: string, prefix?: string): Promise<string> {
  const h = createHash(algo);
  if (prefix) h.update(prefix);
  for await (const c of createReadStream(path, { highWaterMark: 8 << 20 })) h.update(c as Buffer);
  return h.digest("hex");
}

async function safetensorsDataStart(path: string): Promise<number | undefined> {
  const fh = await open(path, "r");
  try {
    const b = Buffer.alloc(8);
    await fh.read(b, 0, 8, 0);
    return 8 + Number(b.readBigUInt64LE(0));
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

export async function startTestHub(opts: TestHubOptions = {}): Promise<TestHub> {
  const repos = new Map<string, Repo>();
  const tokens = new Map<string, string>();
  const blobs = new Map<string, HubFile>();
  const counters: HubServerCounters = { requests: 0, bytesServed: 0, tensorBytesServed: 0, storageAuthHeaders: 0, throttled: 0, resets: 0 };
  const faults = { throttleEvery: 0, resetEvery: 0, failPaths: [] as string[] };
  const hits = new Map<string, number>();
  /** Counts the request; true when it was answered with an injected 503. */
  const injected = (req: IncomingMessage, res: ServerResponse): boolean => {
    const key = `${req.method} ${(req.url ?? "").split("?")[0]} ${req.headers.range ?? ""}`.trim();
    hits.set(key, (hits.get(key) ?? 0) + 1);
    if (!faults.failPaths.some((p) => (req.url ?? "").includes(p))) return false;
    res.writeHead(503).end();
    return true;
  };
  let storageReads = 0;
  let commitSeq = 0;
  const nonce = randomBytes(8).toString("hex");

  const repoOf = (id: string): Repo => {
    let r = repos.get(id);
    if (!r) repos.set(id, (r = { gated: false, refs: new Map(), commits: new Map() }));
    return r;
  };

  /** Sends [start, end] of a file (a Range, or the whole), counting bytes and tensor bytes. */
  const sendFile = (req: IncomingMessage, res: ServerResponse, f: HubFile, headers: Record<string, string | number>, isStorage: boolean) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    let start = 0;
    let end = f.size - 1;
    let status = 200;
    if (m) {
      start = Number(m[1]);
      end = Math.min(m[2] ? Number(m[2]) : f.size - 1, f.size - 1);
      if (start >= f.size) return void res.writeHead(416, { "content-range": `bytes */${f.size}` }).end();
      status = 206;
      headers["content-range"] = `bytes ${start}-${end}/${f.size}`;
    }
    const len = Math.max(0, end - start + 1);
    res.writeHead(status, { ...headers, "content-length": len, "accept-ranges": "bytes" });
    if (req.method === "HEAD" || len === 0) return void res.end();
    counters.bytesServed += len;
    if (f.dataStart !== undefined) counters.tensorBytesServed += Math.max(0, end + 1 - Math.max(start, f.dataStart));
    const reset = isStorage && faults.resetEvery > 0 && ++storageReads % faults.resetEvery === 0 && len > 1;
    if (opts.serveFromMemory && !reset && f.size <= MEMORY_FILE_MAX) {
      f.memory ??= readFileSync(f.disk);
      return void res.end(f.memory.subarray(start, end + 1));
    }
    // 1 MiB reads (not the 64 KiB default): this server shares the CPU with the merge it serves in benchmarks.
    const stream = createReadStream(f.disk, { start, end: reset ? start + Math.floor(len / 2) - 1 : end, highWaterMark: 1 << 20 });
    if (reset) {
      counters.resets++;
      stream.on("end", () => res.socket?.destroy());
      stream.pipe(res, { end: false });
    } else stream.pipe(res);
  };

  const error = (res: ServerResponse, status: number, code: string) =>
    res.writeHead(status, { "x-error-code": code, "content-type": "application/json" }).end(JSON.stringify({ error: code }));

  const authorize = (req: IncomingMessage, res: ServerResponse, id: string, repo: Repo): boolean => {
    if (!repo.gated) return true;
    const auth = req.headers.authorization;
    if (!auth) return (void error(res, 401, "GatedRepo"), false);
    if (auth !== `Bearer ${tokens.get(id)}`) return (void error(res, 403, "GatedRepo"), false);
    return true;
  };

  const resolveRev = (repo: Repo, rev: string): string | undefined => (repo.commits.has(rev) ? rev : repo.refs.get(rev));

  type Handler = (req: IncomingMessage, res: ServerResponse) => void;
  const late = (h: Handler): Handler => (opts.latencyMs ? (req, res) => void setTimeout(() => h(req, res), opts.latencyMs) : h);

  const hub: Server = createServer(
    late((req, res) => {
      counters.requests++;
      if (injected(req, res)) return;
      if (faults.throttleEvery > 0 && counters.requests % faults.throttleEvery === 0) {
        counters.throttled++;
        return void res.writeHead(429, { "retry-after": "0" }).end();
      }
      const url = new URL(req.url ?? "/", "http://x");
      const parts = url.pathname.split("/").map(decodeURIComponent);
      // /api/models/{org}/{name}/revision/{rev}
      if (parts[1] === "api" && parts[2] === "models" && parts[5] === "revision") {
        const id = `${parts[3]}/${parts[4]}`;
        const repo = repos.get(id);
        if (!repo) return error(res, 404, "RepoNotFound");
        if (!authorize(req, res, id, repo)) return;
        const sha = resolveRev(repo, parts.slice(6).join("/"));
        if (!sha) return error(res, 404, "RevisionNotFound");
        const blobsWanted = url.searchParams.get("blobs") === "true";
        const siblings = [...repo.commits.get(sha)!.values()].map((f) =>
          blobsWanted
            ? {
                rfilename: f.path,
                size: f.size,
                blobId: f.lfs ? createHash("sha1").update(f.etag).digest("hex") : f.etag,
                ...(f.lfs ? { lfs: { sha256: f.etag, size: f.size, pointerSize: 134 } } : {}),
              }
            : { rfilename: f.path },
        );
        return void res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ id, modelId: id, sha, private: false, gated: repo.gated ? "manual" : false, siblings }));
      }
      // /{org}/{name}/resolve/{rev}/{path...}
      if (parts[3] === "resolve") {
        const id = `${parts[1]}/${parts[2]}`;
        const repo = repos.get(id);
        if (!repo) return error(res, 404, "RepoNotFound");
        if (!authorize(req, res, id, repo)) return;
        const sha = resolveRev(repo, parts[4]);
        if (!sha) return error(res, 404, "RevisionNotFound");
        const f = repo.commits.get(sha)!.get(parts.slice(5).join("/"));
        if (!f) return error(res, 404, "EntryNotFound");
        const common = { "x-repo-commit": sha, etag: `"${f.lfs ? f.etag : f.etag}"` };
        if (f.lfs) {
          return void res
            .writeHead(302, { ...common, "x-linked-etag": `"${f.etag}"`, "x-linked-size": f.size, location: `${storageUrl}/lfs/${f.etag}?sig=test` })
            .end();
        }
        return sendFile(req, res, f, common, false);
      }
      error(res, 404, "RepoNotFound");
    }),
  );

  const storage: Server = createServer(
    late((req, res) => {
      counters.requests++;
      if (req.headers.authorization) counters.storageAuthHeaders++;
      if (injected(req, res)) return;
      const url = new URL(req.url ?? "/", "http://x");
      const m = /^\/lfs\/([0-9a-f]{64})$/.exec(url.pathname);
      const f = m ? blobs.get(m[1]) : undefined;
      if (!f) return void res.writeHead(404).end();
      sendFile(req, res, f, { etag: `"${f.etag}"` }, true);
    }),
  );

  const listen = async (s: Server) => {
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  const url = await listen(hub);
  const storageUrl = await listen(storage);

  return {
    url,
    storageUrl,
    counters,
    faults,
    hits,
    resetCounters() {
      Object.assign(counters, { requests: 0, bytesServed: 0, tensorBytesServed: 0, storageAuthHeaders: 0, throttled: 0, resets: 0 });
      hits.clear();
    },
    async addCommit(id, dir, opts = {}) {
      const repo = repoOf(id);
      const files = new Map<string, HubFile>();
      for (const disk of (await walk(dir)).sort()) {
        const path = relative(dir, disk).split("\\").join("/");
        const size = (await stat(disk)).size;
        const lfs = LFS.test(path);
        // Benchmarks serve huge (sparse) files: `unhashed` names LFS blobs by path and size instead of
        // reading them (downloads of such a commit fail verification; range reads do not verify).
        const etag =
          lfs && opts.unhashed
            ? createHash("sha256").update(`${disk}\0${size}`).digest("hex")
            : lfs
              ? await hashFile(disk, "sha256")
              : await hashFile(disk, "sha1", `blob ${size}\0`);
        const f: HubFile = { path, disk, size, lfs, etag };
        if (path.endsWith(".safetensors")) f.dataStart = await safetensorsDataStart(disk);
        if (lfs) blobs.set(etag, f);
        files.set(path, f);
      }
      // A fresh nonce per server: commits of different test runs never share a sha (and so never share cache entries).
      const sha = createHash("sha1").update(`${id}\0${++commitSeq}\0${dir}\0${nonce}`).digest("hex");
      repo.commits.set(sha, files);
      repo.refs.set(opts.branch ?? "main", sha);
      for (const t of opts.tags ?? []) repo.refs.set(t, sha);
      return sha;
    },
    setRef(id, ref, sha) {
      repoOf(id).refs.set(ref, sha);
    },
    gate(id, token) {
      repoOf(id).gated = true;
      tokens.set(id, token);
    },
    close: async () => {
      hub.closeAllConnections();
      storage.closeAllConnections();
      await Promise.all([new Promise((r) => hub.close(r)), new Promise((r) => storage.close(r))]);
    },
  };
}

/** Reads a small file for assertions. */
export const readText = (p: string) => readFile(p, "utf8");
