#!/bin/bash
# Prints the K chunk oneDNN's AMX bf16 matmul uses for torch.dot of two bf16 vectors of each length
# K (one torch thread), read from the kernels it JIT-compiles (ONEDNN_JIT_DUMP): per kernel, the
# count of TDPBF16PS (two code paths per kernel, 32 elements each) and whether it adds a partial
# sum (vaddps). Compare with amxKChunk in engine/numerics/torch-dot.ts.
#   usage: MKH_VENV=/tmp/mkh/venv-torch2 scripts/numerics/onednn-amx-kchunks.sh 262143 333345 1000000
set -euo pipefail
PY="${MKH_VENV:-/tmp/mkh/venv-torch2}/bin/python"
for K in "$@"; do
  d=$(mktemp -d)
  (cd "$d" && ONEDNN_JIT_DUMP=1 "$PY" -c "
import torch; torch.set_num_threads(1)
torch.dot(torch.ones($K, dtype=torch.bfloat16), torch.ones($K, dtype=torch.bfloat16))" >/dev/null 2>&1)
  line="K=$K"
  chunk=$K
  for f in $(ls "$d" | grep uker | sort -t. -k2 -n); do
    objdump -D -b binary -m i386:x86-64 "$d/$f" >"$d/u.s"
    n=$(grep -c tdpbf16ps "$d/u.s" || true)
    a=$(grep -c vaddps "$d/u.s" || true)
    line="$line | $f: tdpbf16ps=$n vaddps=$a"
    if [ "$a" != 0 ] && [ "$chunk" = "$K" ]; then chunk=$((32 * n / 2)); fi
  done
  echo "$line -> chunk $chunk"
  rm -rf "$d"
done
