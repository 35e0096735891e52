import { MergeloomError } from "../../proto/errors.js";

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** Parses `5000000000`, `5GB`, `500M`, `1.5GiB` into bytes. */
export function parseSize(s: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(s);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new MergeloomError("USAGE", `${flag}: '${s}' is not a size; use bytes (5000000000) or a unit (5GB, 500MB, 1GiB)`);
  const n = Math.floor(Number(m[1]) * unit);
  if (n <= 0) throw new MergeloomError("USAGE", `${flag}: size must be positive`);
  return n;
}

export function parseIntFlag(s: string, flag: string, min = 0): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min) throw new MergeloomError("USAGE", `${flag}: '${s}' must be an integer >= ${min}`);
  return n;
}
