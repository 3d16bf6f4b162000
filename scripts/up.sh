#!/usr/bin/env bash
# One command from a fresh machine to a running 3-node testnet that mines: installs what
# the machine lacks (libclang-dev for rocksdb), builds `cairn` in release mode, and starts
# node0..node2 in ./devnet (or $DIR), each mining continuously with one thread.
# Extra arguments go to `cairn testnet up` (e.g. `-n 5`, or `--block-time 5` instead of
# continuous mining). Stop it with: target/release/cairn testnet down
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN_NO_BROWSER=1 scripts/install-deps.sh   # headless Chromium is for the test suite only
cargo build --release --locked -p cairn-node
if [ "$#" -eq 0 ]; then set -- --mine; fi
exec target/release/cairn testnet --dir "${DIR:-devnet}" up "$@"
