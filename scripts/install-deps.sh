#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test Cairn: libclang for
# rocksdb's bindings (rocksdb itself is compiled from source by cargo), and Chromium with
# its WebDriver for the fork view's browser test. Safe to run again.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
# The browser test only: set CAIRN_NO_BROWSER=1 to skip it (it then says SKIPPED).
if [ -z "${CAIRN_NO_BROWSER:-}" ]; then
  dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
  dpkg -s chromium-driver >/dev/null 2>&1 || need+=(chromium-driver)
fi
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${need[@]}"
