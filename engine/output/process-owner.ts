/**
 * Who owns a temporary output or an output lock: a process on a host. Used to tell leftovers of a
 * dead run (safe to remove) from the work of a live one (never touched).
 */
import { hostname } from "node:os";

export interface ProcessOwner {
  pid: number;
  host: string;
}

export function currentOwner(): ProcessOwner {
  return { pid: process.pid, host: hostname() };
}

/** Whether `pid` names a running process on this host (EPERM: it exists but belongs to another user). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * True only when the owner is provably gone: same host and its pid not alive. An owner on another
 * host (a shared volume) cannot be checked from here, so it counts as alive.
 */
export function isOwnerDead(owner: ProcessOwner): boolean {
  return owner.host === hostname() && owner.pid !== process.pid && !isProcessAlive(owner.pid);
}

/** Parses `{pid, host, ...}` JSON; undefined when the text is not such a record. */
export function parseOwner(text: string): (ProcessOwner & Record<string, unknown>) | undefined {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (v && typeof v === "object" && Number.isSafeInteger(v.pid) && typeof v.host === "string") return v as ProcessOwner & Record<string, unknown>;
  } catch {
    // Not JSON: no owner.
  }
  return undefined;
}
