/**
 * The test Hub in a process of its own, as a real Hub is: the benchmark's process (its heap of
 * engine modules, its file deletions between runs) no longer shares the server's event loop and
 * garbage collector. Measured in hub-throughput's throughput part with the Hub in the benchmark's
 * own process: 100 major GCs of that process during one Hub merge (V8's memory reducer had shrunk
 * its heap while the local run idled), against 3 for the same server alone.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { HubServerCounters, TestHubOptions } from "@mergeloom/test/harness";

type AddCommitArgs = [repo: string, dir: string, opts?: { branch?: string; tags?: string[]; unhashed?: boolean }];

export type HubCall = { id: number; op: "addCommit"; args: AddCommitArgs } | { id: number; op: "resetCounters" | "counters" | "close" };
export type HubReply = { id: number; result?: unknown; error?: string };
type Unsent<T> = T extends unknown ? Omit<T, "id"> : never;

export interface HubProcess {
  url: string;
  addCommit(...args: AddCommitArgs): Promise<string>;
  resetCounters(): Promise<void>;
  counters(): Promise<HubServerCounters>;
  close(): Promise<void>;
}

const ENTRY = fileURLToPath(new URL("./hub-process-entry.js", import.meta.url));

/** Starts the test Hub in a child process (it inherits this process's CPU affinity). */
export async function startHubProcess(opts: TestHubOptions): Promise<HubProcess> {
  const child = fork(ENTRY, [JSON.stringify(opts)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let next = 1;
  child.on("message", (m: HubReply) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error !== undefined) w?.reject(new Error(`test Hub process: ${m.error}`));
    else w?.resolve(m.result);
  });
  child.on("exit", (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`test Hub process exited (${signal ?? code})`));
    waiting.clear();
  });
  const reply = <T>(id: number) => new Promise<T>((resolve, reject) => waiting.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  const call = <T>(m: Unsent<HubCall>): Promise<T> => {
    const id = next++;
    const r = reply<T>(id);
    child.send({ ...m, id });
    return r;
  };
  const { url } = await reply<{ url: string }>(0); // the child's first message, once it listens
  return {
    url,
    addCommit: (...args) => call<string>({ op: "addCommit", args }),
    resetCounters: () => call<void>({ op: "resetCounters" }),
    counters: () => call<HubServerCounters>({ op: "counters" }),
    close: () => call<void>({ op: "close" }),
  };
}
