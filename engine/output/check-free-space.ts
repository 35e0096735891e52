/**
 * Fails a merge before it starts when the output cannot fit: a full disk found after an hour of
 * merging loses the hour (and used to fail with an ENOSPC naming no file).
 */
import { stat, statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { StorageError } from "../errors/index.js";
import { TOKENIZER_FILES } from "./hf-files.js";

/** Room for config.json, the index and the model card. */
const METADATA_MARGIN = 1 << 20;

/** Bytes the output needs beyond its shards: the tokenizer files copied from `tokDir` plus a small margin. */
export async function extraOutputBytes(tokDir: string | undefined): Promise<number> {
  let n = METADATA_MARGIN;
  if (tokDir)
    for (const f of TOKENIZER_FILES)
      n += await stat(join(tokDir, f)).then(
        (s) => (s.isFile() ? s.size : 0),
        () => 0,
      );
  return n;
}

/** Free bytes (for unprivileged users) of the filesystem `path` would be created on. */
export async function freeBytesFor(path: string): Promise<{ dir: string; free: number }> {
  let dir = dirname(path);
  for (;;) {
    try {
      const s = await statfs(dir);
      return { dir, free: s.bavail * s.bsize };
    } catch (err) {
      const parent = dirname(dir);
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || parent === dir) throw err;
      dir = parent;
    }
  }
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

export async function checkFreeSpace(out: string, needBytes: number): Promise<void> {
  const { dir, free } = await freeBytesFor(out);
  if (free >= needBytes) return;
  throw new StorageError(
    `write output ${out}: the output needs ${mb(needBytes)} but the filesystem of ${dir} has ${mb(free)} free; free space, choose an output on another filesystem, or pass --no-space-check`,
  );
}
