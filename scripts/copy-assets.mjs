#!/usr/bin/env node
// tsc compiles only .ts: copy the data files that tests and code load next to themselves
// (JSON reference values and schemas, .jinja chat templates) into dist/ at the same relative paths.
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
    else if ((name.endsWith(".json") || name.endsWith(".jinja")) && !SKIP_FILES.has(name)) {
      const dest = join("dist", p);
      mkdirSync(dirname(dest), { recursive: true });
      copyFileSync(p, dest);
      n++;
    }
  }
}
for (const r of ROOTS) walk(r);
console.log(`copied ${n} data file(s) into dist/`);
