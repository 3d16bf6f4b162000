# Shared helpers of the scenario scripts (sourced, not run).
#
# Environment:
#   CAIRN    the cairn binary (default: build target/release/cairn with cargo)
#   DIR      the testnet directory (default: a fresh temp dir)
#   GENESIS  a genesis.json to run on (default: the embedded dev network)
#   KEEP=1   leave the testnet running at the end (default: stop it)

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${CAIRN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked -q -p cairn-node)
  CAIRN="$ROOT/target/release/cairn"
fi
DIR="${DIR:-$(mktemp -d)/devnet}"
GENESIS_ARGS=()
if [ -n "${GENESIS:-}" ]; then GENESIS_ARGS=(--genesis "$GENESIS"); fi
START=$(date +%s)

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
info() { printf '   %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then "$CAIRN" testnet --dir "$DIR" down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

rpc()    { local node=$1; shift; "$CAIRN" rpc --datadir "$DIR/$node" "$@"; }
wallet() { local node=$1; shift; "$CAIRN" wallet --datadir "$DIR/$node" "${GENESIS_ARGS[@]}" "$@"; }
height() { rpc "$1" getblockcount; }
tip()    { rpc "$1" getbestblockhash; }
json()   { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for: $what"
    sleep 0.2
  done
}

same_tip() { # same_tip NODE...: all named nodes have the same best block
  local first; first=$(tip "$1"); shift
  for n in "$@"; do [ "$(tip "$n")" = "$first" ] || return 1; done
}

confirmed_on() { # confirmed_on NODE TXID: the tx has >= 1 confirmation on NODE
  local c; c=$(rpc "$1" getrawtransaction "$2" true | json 'd.get("confirmations", 0)')
  [ "$c" -ge 1 ]
}

elapsed() { echo $(( $(date +%s) - START )); }
