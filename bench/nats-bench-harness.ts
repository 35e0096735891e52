/**
 * Shared pieces of the distributed-merge benchmarks: a no-op executor (empty work, so only the
 * dispatch path is measured), tiny tasks, no-op worker processes, and best/median statistics.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { cpus, availableParallelism } from "node:os";
import { join } from "node:path";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import type { MergeExecutor } from "@mergeloom/engine/driver";
import type { PeerRole } from "@mergeloom/proto/codec";
import { connectNatsTransport, NatsTransport } from "@mergeloom/transport";
import { repoRoot } from "./make-synthetic-checkpoints.js";

/** Returns an empty result at once: the worker still decodes, checks KV, records and acks. */
export class NoopExecutor implements MergeExecutor {
  readonly threads = 0;
  async run(task: MergeTask): Promise<MergeTaskResult> {
    return {
      taskId: task.taskId,
      tensors: task.tensors.map((t) => ({ name: t.name, byteLength: t.dest.byteLength })),
      bytesRead: 0,
      bytesWritten: 0,
      durationMs: 0,
    };
  }
  async close(): Promise<void> {}
}

/** `n` tasks of one small tensor each (a 64×64 bf16 linear merge of two inputs). */
export function makeTinyTasks(jobId: string, n: number): MergeTask[] {
  const bytes = 64 * 64 * 2;
  const src = (m: number) => ({
    uri: `/bench/model-${m}/model.safetensors`,
    offset: 0,
    byteLength: bytes,
    dtype: "BF16" as const,
    shape: [64, 64],
    tensor: "w",
  });
  return Array.from({ length: n }, (_, i) => ({
    jobId,
    taskId: `t${i}`,
    seed: 0,
    tensors: [
      {
        name: `model.layers.${i}.w`,
        shape: [64, 64],
        outDtype: "BF16" as const,
        method: "linear",
        params: { normalize: true },
        inputs: [0, 1].map((m) => ({ model: `m${m}`, source: src(m), params: { weight: 0.5 } })),
        baseIndex: -1,
        dest: { uri: "discard://", offset: i * bytes, byteLength: bytes },
      },
    ],
  }));
}

export interface Stats {
  best: number;
  median: number;
}

/** Best = max for rates, min for times. */
export function stats(xs: readonly number[], higherIsBetter: boolean): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { best: higherIsBetter ? s[s.length - 1] : s[0], median };
}

export function machine(): string {
  return `${availableParallelism()} cores, ${cpus()[0]?.model ?? "unknown CPU"}, node ${process.version}`;
}

export const ROOT = repoRoot();
export const CLI = join(ROOT, "bin", "mergeloom.js");

/** A child process whose output is kept, resolved once a line matching `ready` appears. */
export class BenchProc {
  readonly child: ChildProcess;
  out = "";
  readonly exited: Promise<number | null>;
  constructor(file: string, args: string[]) {
    this.child = spawn(process.execPath, [file, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.on("data", (d) => (this.out += d));
    this.child.stderr!.on("data", (d) => (this.out += d));
    this.exited = new Promise((r) => this.child.on("close", (c) => r(c)));
  }
  async waitFor(re: RegExp, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!re.test(this.out)) {
      if (this.child.exitCode !== null) throw new Error(`bench: process exited (${this.child.exitCode}) before ${re}:\n${this.out}`);
      if (Date.now() > end) throw new Error(`bench: timed out waiting for ${re}:\n${this.out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  async stop(): Promise<void> {
    if (this.child.exitCode === null) this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

/** Starts `bench/noop-worker.js` (compiled next to this file) on `url` under `prefix`. */
export async function startNoopWorkerProc(url: string, prefix: string, name: string, concurrency: number, extra: string[] = []): Promise<BenchProc> {
  const file = new URL("./noop-worker.js", import.meta.url).pathname;
  const p = new BenchProc(file, ["--nats", url, "--prefix", prefix, "--name", name, "--concurrency", String(concurrency), ...extra]);
  await p.waitFor(/ready/);
  return p;
}

export function parseFlag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function connectBenchTransport(url: string, prefix: string, role: PeerRole): Promise<NatsTransport> {
  return connectNatsTransport({ servers: url, prefix, role });
}
