#!/usr/bin/env node
// Runs every compiled *.test.js under each package's dist/ with node's test runner. Node 20 has no
// glob support in `node --test`, so the file list is collected here. Integration tests (test/dist/) run with
// concurrency 1: they start servers and processes and share the machine's two cores.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function collect(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}
const filter = process.argv.slice(2);
const PACKAGES = ["proto", "transport", "engine", "worker", "coordinator", "test", "bench"];
let files = PACKAGES.flatMap((p) => collect(join(p, "dist"))).sort();
if (filter.length) files = files.filter((f) => filter.some((s) => f.includes(s)));
const unit = files.filter((f) => !f.startsWith(join("test", "dist")));
const integration = files.filter((f) => f.startsWith(join("test", "dist")));
let failed = false;
for (const [label, group, conc] of [
  ["unit", unit, 2],
  ["integration", integration, 1],
]) {
  if (!group.length) continue;
  console.log(`\n# ${label} tests (${group.length} files)`);
  // A test that hangs (a child waiting on something that never comes) fails by name after 15 min
  // instead of stalling the run; the slowest single test takes about 2 min here.
  const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${conc}`, "--test-timeout=900000", ...group], { stdio: "inherit" });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
