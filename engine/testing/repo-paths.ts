/**
 * Test support: the repository's root and fixtures, found from the calling file whether it runs
 * compiled (<package>/dist/…) or from source under tsx — one finder for every package's tests.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

/** The directory holding the package.json named "mergeloom" (above this module). */
export function repoRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "mergeloom") return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`repository root (package.json named mergeloom) not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The arith-llama fixtures: $MERGELOOM_FIXTURES/arith-llama when set, else the repository's. */
export function arithFixtures(): string {
  if (process.env.MERGELOOM_FIXTURES) return join(process.env.MERGELOOM_FIXTURES, "arith-llama");
  return join(repoRoot(), "fixtures", "arith-llama");
}
