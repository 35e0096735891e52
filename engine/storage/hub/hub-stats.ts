/**
 * Bytes this process (or worker thread) read for tensors and metadata, split by where they came
 * from: the network (per host) or a local cache. Load spans and the progress bar report them.
 */
export interface HubByteStats {
  networkBytes: number;
  cacheBytes: number;
  /** Network bytes by host (`huggingface.co`, the CDN, a mirror). */
  byHost: Record<string, number>;
}

const stats: HubByteStats = { networkBytes: 0, cacheBytes: 0, byHost: {} };

export function countNetworkBytes(host: string, n: number): void {
  stats.networkBytes += n;
  stats.byHost[host] = (stats.byHost[host] ?? 0) + n;
}

export function countCacheBytes(n: number): void {
  stats.cacheBytes += n;
}

/** A copy of the counters; subtract two snapshots to get the bytes of one piece of work. */
export function hubByteStats(): HubByteStats {
  return { networkBytes: stats.networkBytes, cacheBytes: stats.cacheBytes, byHost: { ...stats.byHost } };
}

export function diffHubByteStats(after: HubByteStats, before: HubByteStats): HubByteStats {
  const byHost: Record<string, number> = {};
  for (const [h, n] of Object.entries(after.byHost)) {
    const d = n - (before.byHost[h] ?? 0);
    if (d) byHost[h] = d;
  }
  return { networkBytes: after.networkBytes - before.networkBytes, cacheBytes: after.cacheBytes - before.cacheBytes, byHost };
}
