#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build Cairn: libclang for rocksdb's
# bindings (rocksdb itself is compiled from source by cargo). Safe to run again.
set -euo pipefail
if dpkg -s libclang-dev >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends libclang-dev
