#!/usr/bin/env bash
# Choosing search options without the held-out halves, with more power than evolve-devsplit.sh:
# two-fold cross-fitting inside the search half (examples 1-250 of each task). Fold a searches on
# 1-125 and scores the final CMA-ES mean (best.yml with recommend: mean) on 126-250; fold b the
# other way round. Every search-half example is scored once per seed (1,000 scored examples per
# seed instead of 400). Prints one line per fold and the mean over both.
# Usage: bench/evolve-crossfit.sh OUT EXAMPLE SEED   (from the repo root, after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 example=$2 seed=$3
rm -rf "$out"; mkdir -p "$out/data"
E=fixtures/arith-llama/eval
for t in add sub mul rev; do
  sed -n 1,125p $E/$t.jsonl > "$out/data/$t-a.jsonl"
  sed -n 126,250p $E/$t.jsonl > "$out/data/$t-b.jsonl"
done
sum=0
for fold in a b; do
  other=$([ $fold = a ] && echo b || echo a)
  sed -e "s#fixtures/arith-llama/eval/\(add\|sub\|mul\|rev\).jsonl#$out/data/\1-$fold.jsonl#" "$example" > "$out/search-$fold.yml"
  node bin/mergeloom.js evolve "$out/search-$fold.yml" -o "$out/search-$fold" --json --seed "$seed" > "$out/search-$fold.log"
  node bin/mergeloom.js merge "$out/search-$fold/best.yml" -o "$out/model-$fold" --overwrite --json > /dev/null
  val=$out/data/add-$other.jsonl,$out/data/sub-$other.jsonl,$out/data/mul-$other.jsonl,$out/data/rev-$other.jsonl
  line=$(node bin/mergeloom.js eval "$out/model-$fold" --onnx $E/model.onnx --data "$val" --json |
    node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(`${r.tasks.map(t=>(t.accuracy*100).toFixed(1)).join(" ")} ${(r.mean*100).toFixed(2)}`)')
  echo "| seed $seed fold $fold | $line |"
  sum=$(node -e "console.log(${sum} + ${line##* })")
  rm -rf "$out/model-$fold"
done
echo "| seed $seed mean | $(node -e "console.log((${sum} / 2).toFixed(2))") |"
