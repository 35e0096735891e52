/**
 * Runs one tensor job and attaches the Hub/HTTP bytes that arrived meanwhile (network vs cache,
 * by host): the thread's counters' difference. A thread merges one job at a time, but the job it
 * holds next fetches during this one (tensor-thread.ts), so those bytes count here: the split
 * between jobs (and tasks) is approximate; the thread's and the merge's totals are not changed.
 */
import { diffHubByteStats, hubByteStats } from "../storage/hub/hub-stats.js";
import type { TensorJobResult } from "./merge-tensor.js";

export async function countedMergeTensor(run: () => Promise<TensorJobResult>): Promise<TensorJobResult> {
  const before = hubByteStats();
  const r = await run();
  const d = diffHubByteStats(hubByteStats(), before);
  if (d.networkBytes || d.cacheBytes) r.hub = d;
  return r;
}
