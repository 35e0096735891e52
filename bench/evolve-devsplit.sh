#!/usr/bin/env bash
# Choosing search options without the held-out halves: search on examples 1-150 of each task,
# score on 151-250 (both inside the search half of bench/evolve-heldout.sh). Scores the final
# CMA-ES mean (k1), the average of the last k generations' means (k2, k4, k8, k16; see
# search.recommend_window) and the best sample on 151-250.
# Usage: bench/evolve-devsplit.sh OUT EXAMPLE SEED ['  extra_search_key: value\n' ...]   (after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 example=$2 seed=$3 extra=${4:-}
rm -rf "$out"; mkdir -p "$out/data" "$out/models"
E=fixtures/arith-llama/eval
for t in add sub mul rev; do
  sed -n 1,150p $E/$t.jsonl > "$out/data/$t-fit.jsonl"
  sed -n 151,250p $E/$t.jsonl > "$out/data/$t-val.jsonl"
done
sed -e "s#fixtures/arith-llama/eval/\(add\|sub\|mul\|rev\).jsonl#$out/data/\1-fit.jsonl#" "$example" > "$out/search.yml"
# the example's search: block is last; keep the last 16 means (the run's own best.yml is then k16)
printf "  recommend_window: 16\n$extra" >> "$out/search.yml"
node bin/mergeloom.js evolve "$out/search.yml" -o "$out/search" --json --seed "$seed" > "$out/search.log"
node --input-type=module -e '
import { readFileSync, writeFileSync } from "node:fs";
import { candidateYaml, parseSearchConfig } from "@mergeloom/coordinator/evolve";
const [cfgFile, out] = process.argv.slice(1);
const cfg = parseSearchConfig(readFileSync(cfgFile, "utf8"), cfgFile);
const st = JSON.parse(readFileSync(`${out}/search/state.json`, "utf8"));
for (const k of [1, 2, 4, 8, 16].filter((k) => k <= st.recentMeans.length)) {
  const pts = st.recentMeans.slice(-k);
  writeFileSync(`${out}/k${k}.yml`, candidateYaml(cfg.genome, pts[0].map((_, i) => pts.reduce((a, p) => a + p[i], 0) / k), st.numLayers));
}' "$out/search.yml" "$out"
cp "$out/search/best-sample.yml" "$out/sample.yml"
val=$out/data/add-val.jsonl,$out/data/sub-val.jsonl,$out/data/mul-val.jsonl,$out/data/rev-val.jsonl
echo "| seed $seed | add | sub | mul | rev | mean |"
for n in k1 k2 k4 k8 k16 sample; do
  [ -f "$out/$n.yml" ] || continue
  node bin/mergeloom.js merge "$out/$n.yml" -o "$out/models/$n" --overwrite --json > /dev/null
  node bin/mergeloom.js eval "$out/models/$n" --onnx $E/model.onnx --data "$val" --json |
    node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(`| ${process.argv[1]} | ${r.tasks.map(t=>(t.accuracy*100).toFixed(0)).join(" | ")} | ${(r.mean*100).toFixed(2)} |`)' "$n"
  rm -rf "$out/models/$n"
done
