#!/usr/bin/env bash
# Installs what the integration tests need beyond npm packages:
# - a nats-server binary (Debian's package), unless one is on the PATH (tests use testcontainers
#   instead when a Docker engine is reachable);
# - .venv-test/, a Python venv with CPU torch, transformers, safetensors, peft and numpy from the
#   package index pip is configured with, for the tests that load merged outputs in transformers.
# Idempotent: a second run checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

install_nats() {
  if command -v nats-server >/dev/null 2>&1; then
    echo "nats-server present: $(nats-server --version)"
    return
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq nats-server
  nats-server --version
}

# A CPU build of torch: a `+cpu` wheel in pip's find-links when there is one (the index's default
# torch may be a CUDA build whose libraries a CPU machine lacks), else plain `torch`.
torch_requirement() {
  local links dir whl
  links="$(python3 -m pip config get global.find-links 2>/dev/null || true) ${PIP_FIND_LINKS:-}"
  for dir in $links; do
    dir="${dir#file://}"
    whl="$(ls "$dir"/torch-*+cpu-*.whl 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$whl" ]; then echo "$whl"; return; fi
  done
  echo "torch"
}

install_venv() {
  local venv=.venv-test
  local packages="torch transformers safetensors peft numpy"
  # The marker is written only after a complete install (importing torch to check takes ~10 s).
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.installed" 2>/dev/null)" = "$packages" ]; then
    echo ".venv-test present ($packages)"
    return
  fi
  local started=$SECONDS
  rm -rf "$venv"
  python3 -m venv "$venv"
  # --retries 0: an index that cannot be reached fails at once instead of backing off per package;
  # -qq: errors only (a configured index that lacks a package prints a warning per package).
  "$venv/bin/python" -m pip install -qq --retries 0 --disable-pip-version-check \
    "$(torch_requirement)" transformers safetensors peft numpy
  "$venv/bin/python" -c "import torch, transformers, safetensors, peft, numpy; print('.venv-test: torch', torch.__version__, 'transformers', transformers.__version__)"
  echo "$packages" >"$venv/.installed"
  echo ".venv-test built in $((SECONDS - started)) s"
}

install_nats
install_venv
