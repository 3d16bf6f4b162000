#!/usr/bin/env bash
# Demo: a 3-node testnet that mines, one signed payment, confirmed on every node.
source "$(dirname "$0")/lib.sh"

say "Starting 3 nodes in $DIR; node0 mines a block every 2 seconds"
"$CAIRN" testnet --dir "$DIR" up -n 3 --block-time 2 "${GENESIS_ARGS[@]}"

say "Each node's wallet holds one dev account; node1's receives"
TO=$(wallet node1 address | head -n 1)
info "node1's address: $TO"
BEFORE=$(wallet node1 --json balance | json 'd["confirmed"]')
info "node1's confirmed balance: $BEFORE"

say "node0 pays 12.5 coins (1250000000 base units) to node1, fee 1000"
TXID=$(wallet node0 send --to "$TO" --amount 1250000000 --fee 1000 | head -n 1)
info "txid $TXID"

say "Waiting until the payment is mined and every node agrees"
everywhere() { confirmed_on node0 "$1" && confirmed_on node1 "$1" && confirmed_on node2 "$1"; }
wait_for 120 "the payment confirmed on node0, node1 and node2" everywhere "$TXID"
for n in node0 node1 node2; do
  info "$n: $(rpc $n getrawtransaction "$TXID" true | json '"block " + d["blockhash"][:16] + "…, " + str(d["confirmations"]) + " confirmation(s)"')"
done
AFTER=$(wallet node1 --json balance | json 'd["confirmed"]')
[ $((AFTER - BEFORE)) -eq 1250000000 ] || fail "node1's balance grew by $((AFTER - BEFORE)), expected 1250000000"
info "node1's confirmed balance: $BEFORE -> $AFTER"

say "OK: payment confirmed on all 3 nodes in $(elapsed)s"
