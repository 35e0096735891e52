#!/usr/bin/env node
// tsc compiles only .ts: copy the JSON data files that tests and code load next to themselves
// (reference values, schemas) into dist/ at the same relative paths.
import { copyFileSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

const ROOTS = ["proto", "worker", "coordinator", "test", "bench"];
const SKIP = new Set(["node_modules", "dist"]);
const SKIP_FILES = new Set(["package.json", "tsconfig.json"]);
let n = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".json") && !SKIP_FILES.has(name)) {
      const dest = join("dist", p);
      mkdirSync(dirname(dest), { recursive: true });
      copyFileSync(p, dest);
      n++;
    }
  }
}
for (const r of ROOTS) walk(r);
console.log(`copied ${n} JSON asset(s) into dist/`);
