#!/usr/bin/env bash
# Merges the example configs of examples/ and scores every result and every input model on the
# four arith-llama tasks; prints the README's accuracy table (markdown).
set -euo pipefail
cd "$(dirname "$0")/.."
d=fixtures/arith-llama/eval
data=$d/add.jsonl,$d/sub.jsonl,$d/mul.jsonl,$d/rev.jsonl
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
row() {
  node bin/mergeloom.js eval "$2" --onnx $d/model.onnx --data $data --json |
    node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));const a=Object.fromEntries(r.tasks.map(t=>[t.name,(t.accuracy*100).toFixed(1)]));console.log(`| ${process.argv[1]} | ${a.add} | ${a.sub} | ${a.mul} | ${a.rev} | ${(r.mean*100).toFixed(1)} |`)' "$1"
}
echo "| model | add | sub | mul | rev | mean |"
echo "|---|---:|---:|---:|---:|---:|"
for m in base expert-add expert-sub expert-mul expert-rev; do row "$m" fixtures/arith-llama/$m; done
for cfg in examples/*.yml; do
  case "$cfg" in *evolve*) continue ;; esac
  name=$(basename "$cfg" .yml)
  node bin/mergeloom.js merge "$cfg" -o "$out/$name" --json >/dev/null
  if [ "$name" = frankenmerge ]; then continue; fi  # 6 layers: the fixture graph has 4
  row "\`examples/$name.yml\`" "$out/$name"
done
