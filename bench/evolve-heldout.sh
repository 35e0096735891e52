#!/usr/bin/env bash
# Held-out check of the evolutionary search on arith-llama: search on the first 250 examples of
# each eval file (dev), then score best.yml and the baselines on the last 250 (test), which the
# search never saw. Usage: bench/evolve-heldout.sh [OUT_DIR] [EXAMPLE] [SEED]   (from the repo root,
# after npm run build; EXAMPLE defaults to examples/evolve-arith.yml, SEED to the example's)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.bench/evolve-heldout}
example=${2:-examples/evolve-arith.yml}
seed=${3:-}
rm -rf "$out"; mkdir -p "$out/data"
E=fixtures/arith-llama/eval
for t in add sub mul rev; do
  head -n 250 $E/$t.jsonl > "$out/data/$t-dev.jsonl"
  tail -n 250 $E/$t.jsonl > "$out/data/$t-test.jsonl"
done
# The example search, pointed at the dev halves.
sed -e "s#fixtures/arith-llama/eval/\(add\|sub\|mul\|rev\).jsonl#$out/data/\1-dev.jsonl#" "$example" > "$out/search.yml"
start=$(date +%s)
node bin/mergeloom.js evolve "$out/search.yml" -o "$out/search" --json ${seed:+--seed "$seed"} > "$out/search.log"
echo "search: $(( $(date +%s) - start )) s"
test_data=$out/data/add-test.jsonl,$out/data/sub-test.jsonl,$out/data/mul-test.jsonl,$out/data/rev-test.jsonl
score() { # name config [onnx graph]
  node bin/mergeloom.js merge "$2" -o "$out/models/$1" --overwrite --json > /dev/null
  node bin/mergeloom.js eval "$out/models/$1" --onnx "${3:-$E/model.onnx}" --data "$test_data" --json |
    node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));const a=Object.fromEntries(r.tasks.map(t=>[t.name.replace("-test",""),(t.accuracy*100).toFixed(1)]));console.log(`| ${process.argv[1]} | ${a.add} | ${a.sub} | ${a.mul} | ${a.rev} | ${(r.mean*100).toFixed(1)} |`)' "$1"
}
mkdir -p "$out/models" "$out/configs"
echo "| merge (scored on the held-out halves) | add | sub | mul | rev | mean |"
echo "|---|---:|---:|---:|---:|---:|"
# a hybrid search's layer path comes with the graph for its depth
score "evolved best.yml" "$out/search/best.yml" "$( [ -f "$out/search/best.onnx" ] && echo "$out/search/best.onnx" || echo $E/model.onnx )"
[ -n "${SKIP_BASELINES:-}" ] && exit 0
for lam in 0.3 0.5 0.7 1.0; do
  cat > "$out/configs/ta-$lam.yml" <<YML
merge_method: task_arithmetic
base_model: fixtures/arith-llama/base
models:
  - { model: fixtures/arith-llama/expert-add, parameters: { weight: 1.0 } }
  - { model: fixtures/arith-llama/expert-sub, parameters: { weight: 1.0 } }
  - { model: fixtures/arith-llama/expert-mul, parameters: { weight: 1.0 } }
  - { model: fixtures/arith-llama/expert-rev, parameters: { weight: 1.0 } }
parameters: { lambda: $lam }
dtype: float32
out_dtype: bfloat16
YML
  score "task_arithmetic λ $lam" "$out/configs/ta-$lam.yml"
done
score "ties (examples/ties-arith.yml)" examples/ties-arith.yml
