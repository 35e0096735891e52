#!/usr/bin/env bash
# Label-free (entropy) fitness vs accuracy on arith-llama, with the held-out protocol of
# bench/evolve-heldout.sh: the search maximises −entropy on the first 250 examples of each task
# (answers unused) and also records dev accuracy with weight 0 (never in the fitness); then the
# entropy-selected best and the accuracy-selected best are scored on the last 250.
# Usage: bench/evolve-entropy.sh [OUT_DIR] [BUDGET]   (from the repo root, after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.bench/evolve-entropy}; budget=${2:-300}
rm -rf "$out"; mkdir -p "$out/data"
E=fixtures/arith-llama/eval
for t in add sub mul rev; do
  head -n 250 $E/$t.jsonl > "$out/data/$t-dev.jsonl"
  tail -n 250 $E/$t.jsonl > "$out/data/$t-test.jsonl"
done
{
  sed -n '/^genome:/,/^fitness:/p' examples/evolve-arith.yml | sed '$d'
  cat <<YML
fitness:
  graph: $E/model.onnx
  vocab: fixtures/arith-llama/base/vocab.json
  tasks:
$(for t in add sub mul rev; do echo "    - { name: $t-conf, kind: entropy, data: $out/data/$t-dev.jsonl }"; done)
$(for t in add sub mul rev; do echo "    - { name: $t, kind: accuracy, data: $out/data/$t-dev.jsonl, weight: 0 }"; done)
search: { strategy: cmaes, budget: $budget, seed: 1 }
YML
} > "$out/search.yml"
node bin/mergeloom.js evolve "$out/search.yml" -o "$out/search" --json > "$out/search.log"
node bench/evolve-entropy.mjs "$out" | tee "$out/summary.json"
test_data=$out/data/add-test.jsonl,$out/data/sub-test.jsonl,$out/data/mul-test.jsonl,$out/data/rev-test.jsonl
for pick in search/best.yml accuracy-best.yml; do
  node bin/mergeloom.js merge "$out/$pick" -o "$out/model" --overwrite --json > /dev/null
  node bin/mergeloom.js eval "$out/model" --onnx $E/model.onnx --data "$test_data" --json |
    node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(process.argv[1], "held-out:", r.tasks.map(t=>(t.accuracy*100).toFixed(1)).join(" "), "mean", (r.mean*100).toFixed(1))' "$pick"
done
