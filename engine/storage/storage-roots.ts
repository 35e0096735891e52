/**
 * Confinement of worker file access to configured storage roots. Paths are compared after
 * resolving `..` and symlinks, so neither `root/../etc` nor a symlink inside a root that points
 * elsewhere gets out. Callers must open the returned real path, not the path they passed in, so
 * that the path checked is the path used.
 */
import { realpath } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { PathEscapeError } from "../errors/index.js";
import { fsError } from "./fs-error.js";

/**
 * Resolves `path` (which need not exist yet: its nearest existing parent is resolved and the rest
 * appended) and returns its real absolute path, or throws PathEscapeError when it lies outside
 * every root. An empty `roots` list admits nothing.
 */
export async function assertInsideRoots(path: string, roots: readonly string[]): Promise<string> {
  const real = await realpathAllowMissing(resolve(path));
  const realRoots = await Promise.all(roots.map((r) => realpathAllowMissing(resolve(r))));
  if (!realRoots.some((root) => isInside(real, root))) throw new PathEscapeError(path, roots);
  return real;
}

/** True when `child` is `root` or below it (both absolute and normalized). */
export function isInside(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** fs.realpath, except that a missing tail is resolved through its nearest existing parent. */
export async function realpathAllowMissing(abs: string): Promise<string> {
  const missing: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      const real = await realpath(cur);
      return missing.length ? join(real, ...missing.reverse()) : real;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw fsError("resolve", abs, err);
      const parent = dirname(cur);
      if (parent === cur) return abs;
      missing.push(basename(cur));
      cur = parent;
    }
  }
}
