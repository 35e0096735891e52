/**
 * Starts a real nats-server with JetStream for integration tests: a Docker container
 * (testcontainers, image nats:2.10) when a Docker engine is reachable, else the local `nats-server`
 * binary on 127.0.0.1 with file storage in a temp dir. Never skips: with neither available it
 * throws with the install hint. `restart()` keeps the port and the store dir, so JetStream state
 * (streams, consumers, KV) survives, as it does when a real server restarts.
 *
 * MERGELOOM_NATS=binary|docker forces one backend.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";

export interface NatsServerHandle {
  url: string;
  port: number;
  storeDir: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export interface StartNatsServerOptions {
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /** JetStream store dir; default a fresh temp dir, removed on stop. */
  storeDir?: string;
  /** Client port; default a free one. */
  port?: number;
  /** A nats-server configuration file (`-c`): accounts, users, permissions. Command-line flags win over it. */
  configFile?: string;
  /** Environment for the server: a config file reads `$VAR`s (passwords) from it. */
  env?: Record<string, string>;
}

export class NatsServerUnavailableError extends MergeloomError {
  constructor(defect: string, opts: { cause?: unknown } = {}) {
    super("USAGE", `start nats-server: ${defect}; install nats-server: apt-get install -y nats-server (or start a Docker engine for testcontainers)`, opts);
  }
}

export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServerHandle> {
  const ownsStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "mergeloom-nats-")));
  const port = opts.port ?? (await freePort());
  const jetstream = opts.jetstream ?? true;
  const forced = process.env.MERGELOOM_NATS;
  if (forced !== "binary" && (forced === "docker" || (await dockerReachable()))) {
    return startContainer(port, storeDir, jetstream, ownsStore, opts);
  }
  const bin = findBinary();
  if (!bin) throw new NatsServerUnavailableError("no Docker engine is reachable and no nats-server binary is on PATH");
  return startBinary(bin, port, storeDir, jetstream, ownsStore, opts);
}

async function startBinary(
  bin: string,
  port: number,
  storeDir: string,
  jetstream: boolean,
  ownsStore: boolean,
  opts: StartNatsServerOptions,
): Promise<NatsServerHandle> {
  const monitorPort = await freePort();
  const args = [
    ...(opts.configFile ? ["-c", opts.configFile] : []),
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
    "-m",
    String(monitorPort),
    ...(jetstream ? ["-js", "-sd", storeDir] : []),
  ];
  let child: ChildProcess | undefined;
  const launch = async () => {
    const proc = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...opts.env } });
    let log = "";
    proc.stderr?.on("data", (b: Buffer) => {
      log = (log + b.toString()).slice(-4000);
    });
    let exited: number | null | undefined;
    proc.on("exit", (code) => (exited = code));
    child = proc;
    const end = Date.now() + 15_000;
    while (!(await healthy(monitorPort))) {
      if (exited !== undefined) throw new NatsServerUnavailableError(`${bin} exited with code ${exited}:\n${log}`);
      if (Date.now() > end) {
        proc.kill("SIGKILL");
        throw new NatsServerUnavailableError(`${bin} not healthy after 15 s:\n${log}`);
      }
      await sleep(50);
    }
  };
  const halt = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(timer);
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    restart: async () => {
      await halt();
      await launch();
    },
    stop: async () => {
      await halt();
      if (ownsStore) await rm(storeDir, { recursive: true, force: true });
    },
  };
}

async function startContainer(port: number, storeDir: string, jetstream: boolean, ownsStore: boolean, opts: StartNatsServerOptions): Promise<NatsServerHandle> {
  const { GenericContainer, Wait } = await import("testcontainers");
  // A fixed host port binding survives container restarts, so clients reconnect to the same URL.
  const conf = opts.configFile ? ["-c", "/etc/nats/server.conf"] : [];
  const container = await new GenericContainer("nats:2.10")
    .withExposedPorts({ container: 4222, host: port })
    .withBindMounts([
      { source: storeDir, target: "/data" },
      ...(opts.configFile ? [{ source: opts.configFile, target: "/etc/nats/server.conf", mode: "ro" as const }] : []),
    ])
    .withEnvironment(opts.env ?? {})
    .withCommand([...conf, ...(jetstream ? ["-js", "-sd", "/data"] : [])])
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  const host = container.getHost();
  return {
    url: `nats://${host}:${port}`,
    port,
    storeDir,
    restart: async () => {
      await container.restart();
      const end = Date.now() + 15_000;
      while (!(await tcpOpen(host, port))) {
        if (Date.now() > end) throw new NatsServerUnavailableError(`container did not accept connections on ${port} after restart`);
        await sleep(50);
      }
    },
    stop: async () => {
      await container.stop();
      if (ownsStore) await rm(storeDir, { recursive: true, force: true });
    },
  };
}

let dockerCheck: Promise<boolean> | undefined;
function dockerReachable(): Promise<boolean> {
  dockerCheck ??= (async () => {
    // Cheap pre-check: with no socket and no DOCKER_HOST, skip testcontainers' slower probing.
    if (!process.env.DOCKER_HOST && !existsSync("/var/run/docker.sock")) return false;
    try {
      const { getContainerRuntimeClient } = await import("testcontainers");
      const client = await Promise.race([getContainerRuntimeClient(), sleep(10_000).then(() => undefined)]);
      return client !== undefined;
    } catch {
      return false;
    }
  })();
  return dockerCheck;
}

function findBinary(): string | undefined {
  const r = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" });
  const path = r.stdout?.trim();
  if (r.status === 0 && path) return path;
  return ["/usr/bin/nats-server", "/usr/local/bin/nats-server"].find((p) => existsSync(p));
}

async function healthy(monitorPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port }, () => (s.destroy(), resolve(true)));
    s.on("error", () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new NatsServerUnavailableError("no free port"))));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
