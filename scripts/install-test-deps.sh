#!/usr/bin/env bash
# Installs what the integration tests need beyond npm packages: a nats-server binary (Debian's
# package). Tests use testcontainers instead when a Docker engine is reachable.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1; then
  echo "nats-server present: $(nats-server --version)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq nats-server
nats-server --version
