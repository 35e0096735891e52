/** The repository root, found from this file whether it runs compiled (test/dist/…) or under tsx. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function find(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, "utf8")).name === "mergeloom") return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("repository root (package.json named mergeloom) not found above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const REPO_ROOT = find();
export const FIXTURES = join(REPO_ROOT, "fixtures", "arith-llama");
export const CLI = join(REPO_ROOT, "bin", "mergeloom.js");
