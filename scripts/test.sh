#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the end-to-end tests talk to,
# builds the binaries they start, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v md5sum >/dev/null || need_pkgs+=(coreutils)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    echo "missing: ${need_pkgs[*]} (run as root to install them)" >&2
    exit 1
  fi
fi

cargo build --workspace --bins
cargo test --workspace
