import { MergeloomError } from "@mergeloom/proto/errors";

/**
 * Size suffixes. A bare `B` (or `b`) is mergekit's billion (`parse_kmb`: `--out-shard-size 5B`
 * means 5·10⁹ bytes), with its `K` and `M`; `KB`/`MB`/`GB`/`TB` are decimal bytes and
 * `KiB`/`MiB`/`GiB`/`TiB` binary ones.
 */
const UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  m: 1e6,
  b: 1e9,
  g: 1e9,
  t: 1e12,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Parses `5000000000`, `5B` (mergekit: 5e9), `500M`, `5GB`, `1.5GiB` into bytes. */
export function parseSize(s: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(s);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new MergeloomError("USAGE", `${flag}: '${s}' is not a size; use bytes (5000000000), mergekit's K/M/B (5B = 5e9) or a unit (5GB, 500MB, 1GiB)`);
  const n = Math.floor(Number(m[1]) * unit);
  if (n <= 0) throw new MergeloomError("USAGE", `${flag}: size must be positive`);
  return n;
}

export function parseIntFlag(s: string, flag: string, min = 0): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min) throw new MergeloomError("USAGE", `${flag}: '${s}' must be an integer >= ${min}`);
  return n;
}
