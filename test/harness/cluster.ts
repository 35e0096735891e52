/**
 * Real processes for distributed tests: workers and coordinators started through the built CLI,
 * with their output captured so a test can wait for "task … started" and kill at that moment.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { after, before } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, type NatsServerHandle } from "./nats-server.js";
import { CLI, REPO_ROOT } from "./repo-root.js";

export class Proc {
  readonly child: ChildProcess;
  out = "";
  err = "";
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.on("data", (d) => {
      this.out += d;
      this.poke();
    });
    this.child.stderr!.on("data", (d) => {
      this.err += d;
      this.poke();
    });
    this.exited = new Promise((r) => this.child.on("close", (code) => (this.poke(), r(code))));
  }

  private poke(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `pred` holds over stdout+stderr; rejects after `timeoutMs`. */
  async waitFor(pred: (all: string) => boolean, timeoutMs = 30_000, what = "output"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.out + this.err)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got:\n${this.out}\n${this.err}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  /** JSON events printed with --json. */
  events(): Array<Record<string, unknown>> {
    return this.out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
  }

  kill(sig: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
    this.child.kill(sig);
    return this.exited;
  }
}

export interface WorkerOpts {
  name: string;
  prefix: string;
  threads?: number;
  delayMs?: number;
  /** Extra environment of this worker process. */
  env?: Record<string, string>;
  ackWaitS?: number;
  maxDeliver?: number;
  extra?: string[];
  traceFile?: string;
  /** Tasks at once (default 1, so tests can tell which task a worker was running). */
  concurrency?: number;
}

export function startWorker(url: string, o: WorkerOpts): Proc {
  const args = [
    ...(o.traceFile ? ["--trace-file", o.traceFile] : []),
    "worker",
    "--nats",
    url,
    "--nats-prefix",
    o.prefix,
    "--name",
    o.name,
    "--threads",
    String(o.threads ?? 1),
    "--concurrency",
    String(o.concurrency ?? 1),
    "--http-port",
    "0",
  ];
  args.push("--ack-wait", String(o.ackWaitS ?? 3), "--max-deliver", String(o.maxDeliver ?? 5), ...(o.extra ?? []));
  // Workers run in the repository (fixtures) and tests write under the OS temp dir: both are roots
  // unless the test confines the worker itself.
  if (!o.extra?.includes("--storage-root")) args.push("--storage-root", REPO_ROOT, tmpdir());
  return new Proc(args, { ...(o.delayMs ? { MERGELOOM_FAULT_TASK_DELAY_MS: String(o.delayMs) } : {}), ...o.env });
}

export function startCoordinator(url: string, prefix: string, config: string, out: string, extra: string[] = [], traceFile?: string): Proc {
  return new Proc([...(traceFile ? ["--trace-file", traceFile] : []), "merge", config, "-o", out, "--nats", url, "--nats-prefix", prefix, "--json", ...extra]);
}

let n = 0;
export function uniquePrefix(): string {
  return `t${process.pid}_${Date.now().toString(36)}_${n++}`;
}

/**
 * The usual setup of a cluster test, registered as the file's before/after hooks: a JetStream
 * nats-server and a temp dir (handed to `ready`), and every process `track`ed killed at the end.
 */
export function natsClusterFixture(tmpPrefix: string, ready: (server: NatsServerHandle, dir: string) => void): { track(p: Proc): Proc } {
  let server: NatsServerHandle | undefined;
  let dir: string | undefined;
  const procs: Proc[] = [];
  before(async () => {
    server = await startNatsServer({ jetstream: true });
    dir = await mkdtemp(join(tmpdir(), tmpPrefix));
    ready(server, dir);
  });
  after(async () => {
    await Promise.all(procs.map((p) => (p.child.exitCode === null && p.child.signalCode === null ? p.kill("SIGKILL") : undefined)));
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return { track: (p) => (procs.push(p), p) };
}
