/**
 * Where `resolve` redirected each pinned file (the storage host's signed URL), so range reads go
 * straight there instead of through a 302 each. A target is kept until the expiry its signature
 * states (CloudFront `Expires=<epoch s>`, S3 `X-Amz-Date` + `X-Amz-Expires`) less a margin, or for
 * DEFAULT_TTL_MS when it states none; a target that stops answering is dropped by the caller.
 */

const MARGIN_MS = 60_000;
const DEFAULT_TTL_MS = 10 * 60_000;

/** When a signed URL stops being valid (epoch ms); undefined when it says nothing. */
export function signedUrlExpiry(url: string): number | undefined {
  let q: URLSearchParams;
  try {
    q = new URL(url).searchParams;
  } catch {
    return undefined;
  }
  const cf = q.get("Expires");
  if (cf && /^\d+$/.test(cf)) return Number(cf) * 1000;
  const date = q.get("X-Amz-Date");
  const secs = q.get("X-Amz-Expires");
  const m = date ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date) : null;
  if (m && secs && /^\d+$/.test(secs)) return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) + Number(secs) * 1000;
  return undefined;
}

export class RedirectCache {
  private readonly targets = new Map<string, { url: string; until: number }>();
  constructor(private readonly now: () => number = Date.now) {}

  get(key: string): string | undefined {
    const t = this.targets.get(key);
    if (!t) return undefined;
    if (this.now() < t.until) return t.url;
    this.targets.delete(key);
    return undefined;
  }

  set(key: string, url: string): void {
    const expiry = signedUrlExpiry(url);
    const until = expiry === undefined ? this.now() + DEFAULT_TTL_MS : expiry - MARGIN_MS;
    if (until > this.now()) this.targets.set(key, { url, until });
  }

  delete(key: string): void {
    this.targets.delete(key);
  }
}
