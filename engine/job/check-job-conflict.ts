/**
 * With NATS, two coordinators may run on different hosts against one shared volume; the lock file
 * covers the volume, the jobs bucket covers the cluster: a job still active for the same output,
 * owned by another coordinator that is alive, means this run must not start.
 */
import { MergeloomError } from "@mergeloom/proto/errors";
import type { JobRecord } from "@mergeloom/proto/records";
import { isProcessAlive, type ProcessOwner } from "../output/process-owner.js";

/** How often a running job's record is refreshed, and how stale a remote owner's record may get before it counts as dead. */
export const JOB_HEARTBEAT_MS = 10_000;
export const JOB_OWNER_TIMEOUT_MS = 3 * JOB_HEARTBEAT_MS;

const ACTIVE = new Set(["planned", "running", "assembling"]);

export function ownerMeta(owner: ProcessOwner): Record<string, string | number> {
  return { ownerPid: owner.pid, ownerHost: owner.host };
}

/** Throws OUTPUT_LOCKED when another live coordinator has an active job writing `out`. */
export function assertNoLiveJobFor(out: string, jobs: readonly JobRecord[], me: ProcessOwner, now = Date.now()): void {
  for (const j of jobs) {
    if (!ACTIVE.has(j.state) || j.meta?.out !== out) continue;
    const pid = j.meta?.ownerPid;
    const host = j.meta?.ownerHost;
    if (typeof pid !== "number" || typeof host !== "string") continue; // written by a version without owners
    if (pid === me.pid && host === me.host) continue;
    const alive = host === me.host ? isProcessAlive(pid) : now - j.updatedAt < JOB_OWNER_TIMEOUT_MS;
    if (!alive) continue;
    throw new MergeloomError(
      "OUTPUT_LOCKED",
      `write output ${out}: another mergeloom run (pid ${pid} on host ${host}) is writing ${out} (job ${j.jobId}); wait for it to finish or cancel it with mergeloom cancel ${j.jobId}`,
    );
  }
}
