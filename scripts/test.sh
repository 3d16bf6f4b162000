#!/usr/bin/env bash
# The test command of the README: installs what a fresh machine lacks, then runs every test
# of the workspace (unit, property and integration tests that start real nodes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --workspace --locked
