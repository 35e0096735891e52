#!/usr/bin/env node
// tsc compiles only .ts: copy the data files that tests and code load next to themselves
// (JSON reference values and schemas, .jinja chat templates) into each package's dist/ at the
// same relative paths (engine/output/chat-templates/x.jinja -> engine/dist/output/chat-templates/x.jinja).
import { copyFileSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

const PACKAGES = ["proto", "transport", "engine", "worker", "coordinator", "test", "bench"];
const SKIP = new Set(["node_modules", "dist"]);
const SKIP_FILES = new Set(["package.json", "tsconfig.json"]);
let n = 0;
function walk(pkg, rel) {
  for (const name of readdirSync(join(pkg, rel))) {
    if (SKIP.has(name)) continue;
    const r = join(rel, name);
    if (statSync(join(pkg, r)).isDirectory()) walk(pkg, r);
    else if ((name.endsWith(".json") || name.endsWith(".jinja")) && !SKIP_FILES.has(name)) {
      const dest = join(pkg, "dist", r);
      mkdirSync(dirname(dest), { recursive: true });
      copyFileSync(join(pkg, r), dest);
      n++;
    }
  }
}
for (const p of PACKAGES) walk(p, "");
console.log(`copied ${n} data file(s) into the packages' dist/`);
