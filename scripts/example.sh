#!/usr/bin/env bash
# The README's first quick-start command: TIES-merge the bundled arith-llama experts and score the result.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/ties-arith}
node bin/mergeloom.js merge examples/ties-arith.yml -o "$out" --overwrite
echo "merged model written to $(cd "$out" && pwd)"
d=fixtures/arith-llama/eval
node bin/mergeloom.js eval "$out" --onnx $d/model.onnx --data $d/add.jsonl,$d/sub.jsonl,$d/mul.jsonl,$d/rev.jsonl
