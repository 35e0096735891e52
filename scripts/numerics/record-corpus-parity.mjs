#!/usr/bin/env node
// Runs mergekit's own code (the shared oracle) on every corpus config (test/configs/corpus) whose
// method `--numerics mergekit` reproduces deterministically, on the corpus's stand-in checkpoints,
// and records a 16-hex-digit sha256 prefix of every output tensor in
// test/reference/mergekit-parity/corpus/<config>.json (small: CI checks them without mergekit).
// Random methods (dare_*, della*) are skipped: their masks come from a different generator; so
// are configs `mergeloom plan --numerics mergekit` refuses (e.g. sce with select_topk < 1).
//   npm run build && MKH_VENV=… MKH_SRC=… node scripts/numerics/record-corpus-parity.mjs [SUBSTRING…]
// MERGELOOM_NUMERICS=mergekit-torch1.13 (with MKH_VENV the oracle's Debian torch 1.13 venv) records
// into test/reference/mergekit-parity/corpus-torch1.13 for that mode instead.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CORPUS_DIR, CORPUS_PARITY_DIR, CORPUS_PARITY_TORCH1_DIR, corpusEntries, mapCorpusModels, writeCorpusStandIns } from "@mergeloom/test/harness";
import { MERGEKIT_NUMERICS_METHODS } from "@mergeloom/engine/numerics";

const ORACLE = process.env.MKH_ORACLE ?? "/work/shared/mergekit-oracle/run_mergekit.py";
const only = process.argv.slice(2);
const numerics = process.env.MERGELOOM_NUMERICS ?? "mergekit";
const PARITY_DIR = numerics === "mergekit-torch1.13" ? CORPUS_PARITY_TORCH1_DIR : CORPUS_PARITY_DIR;

function hashes(dir) {
  const out = {};
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith(".safetensors")) continue;
    const raw = readFileSync(join(dir, f));
    const n = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + n).toString("utf8"));
    for (const [name, e] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      out[name] = `${e.dtype}:${createHash("sha256")
        .update(raw.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]))
        .digest("hex")
        .slice(0, 16)}`;
    }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

const dir = mkdtempSync(join(tmpdir(), "corpus-parity-"));
const local = await writeCorpusStandIns(dir);
const venv = process.env.MKH_VENV ?? join(tmpdir(), "mkh", "venv");
const torch = spawnSync(join(venv, "bin", "python"), ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" }).stdout.trim();
const commit = readFileSync(join(process.env.MKH_SRC ?? join(tmpdir(), "mkh", "src"), ".mkh-commit"), "utf8").trim();
mkdirSync(PARITY_DIR, { recursive: true });
for (const e of corpusEntries()) {
  if (!MERGEKIT_NUMERICS_METHODS.has(e.method) || /^(dare|della)/.test(e.method)) continue;
  if (only.length && !only.some((s) => e.file.includes(s))) continue;
  const cfg = join(dir, e.file);
  writeFileSync(cfg, mapCorpusModels(readFileSync(join(CORPUS_DIR, e.file), "utf8"), local));
  const plan = spawnSync(process.execPath, ["bin/mergeloom.js", "plan", cfg, "--numerics", numerics], { encoding: "utf8" });
  if (plan.status !== 0) {
    console.error(`${e.file}: skipped, mergeloom refuses it in this mode: ${plan.stderr.trim().split("\n").pop()}`);
    continue;
  }
  const out = join(dir, `${e.file}.out`);
  const t0 = Date.now();
  const r = spawnSync("python3", [ORACLE, cfg, out, "--threads", "1", "--no-write-model-card", "--quiet", "--lora-merge-cache", join(dir, "lora-cache")], {
    encoding: "utf8",
  });
  if (r.status !== 0) {
    console.error(`${e.file}: mergekit failed (exit ${r.status}): ${r.stderr.trim().split("\n").pop()}`);
    continue;
  }
  const rec = { config: `test/configs/corpus/${e.file}`, mergekit: commit, torch, threads: 1, tensors: hashes(out) };
  writeFileSync(join(PARITY_DIR, e.file.replace(/\.yml$/, ".json")), JSON.stringify(rec, null, 0).replace(/,"/g, ',\n"') + "\n");
  console.error(`${e.file}: ${Object.keys(rec.tensors).length} tensors in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  rmSync(out, { recursive: true, force: true });
}
rmSync(dir, { recursive: true, force: true });
