// Label-free fitness check (AdaMerging's entropy): after bench/evolve-entropy.sh's search, how well
// did entropy rank candidates as accuracy does, and how do the entropy-selected best and the
// accuracy-selected best score on the held-out halves? Usage: node bench/evolve-entropy.mjs OUT
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { candidateYaml, parseSearchConfig, pearson, spearman } from "@mergeloom/coordinator/evolve";

const out = process.argv[2];
const state = JSON.parse(readFileSync(join(out, "search", "state.json"), "utf8"));
const config = parseSearchConfig(readFileSync(join(out, "search.yml"), "utf8"), "search.yml");
const acc = config.fitness.tasks.filter((t) => t.kind === "accuracy").map((t) => t.name);
const rows = state.evaluations
  .filter((e) => typeof e.fitness === "number")
  .map((e) => ({ e, entropy: e.fitness, accuracy: acc.reduce((s, t) => s + e.scores[t], 0) / acc.length }));
const rho = spearman(
  rows.map((r) => r.entropy),
  rows.map((r) => r.accuracy),
);
const r = pearson(
  rows.map((r) => r.entropy),
  rows.map((r) => r.accuracy),
);
const byAcc = rows.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
writeFileSync(join(out, "accuracy-best.yml"), candidateYaml(config.genome, byAcc.e.genotype, state.numLayers, `accuracy-selected candidate ${byAcc.e.id}`));
console.log(
  JSON.stringify({
    candidates: rows.length,
    spearman: rho,
    pearson: r,
    entropyBest: state.best.id,
    entropyBestDevAccuracy: acc.reduce((s, t) => s + state.best.scores[t], 0) / acc.length,
    accuracyBest: byAcc.e.id,
    accuracyBestDevAccuracy: byAcc.accuracy,
  }),
);
