/**
 * Runs one tensor job and attaches the Hub/HTTP bytes it caused (network vs cache, by host). A
 * thread runs one job at a time, so the difference of the thread's counters is this job's.
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
