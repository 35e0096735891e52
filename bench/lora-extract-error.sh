#!/usr/bin/env bash
# Extraction error of `mergeloom lora extract` against rank on arith-llama (expert-add − base, 28
# linear weights of 128×128 … 352×128), next to the optimal truncated-SVD error that numpy's exact
# SVD gives (needs .venv-test). Usage: bench/lora-extract-error.sh [OUT_DIR]  (repo root, after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.bench/lora-extract}
rm -rf "$out"; mkdir -p "$out"
F=fixtures/arith-llama
echo "| rank | mergeloom error (all deltas) | optimal error | worst tensor / its optimal | seconds (2 cores, incl. the error pass) |"
echo "|---:|---:|---:|---:|---:|"
for r in 4 8 16 32 64; do
  start=$(date +%s.%N)
  node bin/mergeloom.js lora extract $F/expert-add --base $F/base -r $r -o "$out/r$r" --json > "$out/r$r.json"
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  .venv-test/bin/python test/reference/check_extracted_lora.py $F/base $F/expert-add "$out/r$r" $r 2>/dev/null | tail -n 1 > "$out/r$r.ref.json"
  python3 - "$out/r$r.json" "$out/r$r.ref.json" "$r" "$secs" <<'PY'
import json, sys, math
rep = json.load(open(sys.argv[1])); ref = json.load(open(sys.argv[2]))["tensors"]
lora = [t for t in rep["tensors"] if t["kind"] == "lora"]
opt = math.sqrt(sum((ref[t["name"]]["optimal"] * t["deltaNorm"]) ** 2 for t in lora) / sum(t["deltaNorm"] ** 2 for t in lora))
# Weights whose rank is at most r have an optimal error of ~0 (bf16 rounding of A, B): no ratio.
ratios = [t["relError"] / ref[t["name"]]["optimal"] for t in lora if ref[t["name"]]["optimal"] > 1e-3]
print(f"| {sys.argv[3]} | {rep['relError']:.4f} | {opt:.4f} | {max(ratios):.4f} | {float(sys.argv[4]):.1f} |")
PY
done
