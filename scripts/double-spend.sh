#!/usr/bin/env bash
# Double spends: refused on one node; across a partition both sides confirm their own
# version, and after healing exactly one survives everywhere.
source "$(dirname "$0")/lib.sh"

say "Starting 3 nodes in $DIR (mining on demand)"
"$CAIRN" testnet --dir "$DIR" up -n 3 "${GENESIS_ARGS[@]}"
A=$(wallet node1 address | head -n 1)   # recipient of the first spend
B=$(wallet node2 address | head -n 1)   # recipient of the second spend
A0=$(rpc node0 getbalance "$A"); B0=$(rpc node0 getbalance "$B")

say "1. The same coin twice on one node: the second spend must be refused"
OUT=$(wallet node0 --json double-spend --to "$A" --to2 "$B" --amount 500000000)
FIRST=$(echo "$OUT" | json 'd["first"]["answer"]["accepted"]')
SECOND=$(echo "$OUT" | json 'd["second"]["answer"]')
info "first accepted: $FIRST; second answer: $SECOND"
[ "$FIRST" = True ] || fail "the first spend was not accepted"
echo "$SECOND" | grep -q "txn-mempool-conflict" || fail "the second spend was not refused as txn-mempool-conflict"
rpc node0 generate 1 >/dev/null
wait_for 60 "all nodes on one tip" same_tip node0 node1 node2

say "2. Partition node0 | node1,node2 and spend one coin on each side"
"$CAIRN" testnet --dir "$DIR" partition node0 node1,node2
OUT=$(wallet node0 --json double-spend --to "$A" --to2 "$B" --amount 700000000 --node "$DIR/node0" --node2 "$DIR/node1")
TX1=$(echo "$OUT" | json 'd["first"]["txid"]'); TX2=$(echo "$OUT" | json 'd["second"]["txid"]')
[ "$(echo "$OUT" | json 'd["first"]["answer"]["accepted"]')" = True ] || fail "node0 refused the first spend"
[ "$(echo "$OUT" | json 'd["second"]["answer"]["accepted"]')" = True ] || fail "node1 refused the second spend"
info "node0 accepted $TX1 (pays node1's wallet)"
info "node1 accepted $TX2 (pays node2's wallet)"

say "Each side mines its version: node0 one block, node1 three"
rpc node0 generate 1 >/dev/null
rpc node1 generate 3 >/dev/null
wait_for 60 "node2 follows node1" same_tip node1 node2
confirmed_on node0 "$TX1" || fail "node0 did not confirm its version"
confirmed_on node1 "$TX2" || fail "node1 did not confirm its version"
info "node0 confirmed $TX1 at height $(height node0); node1 confirmed $TX2 at height $(height node1)"

say "Heal the partition: the heavier chain (node1's) wins everywhere"
"$CAIRN" testnet --dir "$DIR" heal
wait_for 120 "all nodes on one tip" same_tip node0 node1 node2
for n in node0 node1 node2; do
  confirmed_on "$n" "$TX2" || fail "$n does not have the surviving spend confirmed"
  if rpc "$n" getrawtransaction "$TX1" >/dev/null 2>&1; then fail "$n still knows the losing spend $TX1"; fi
done
A1=$(rpc node0 getbalance "$A"); B1=$(rpc node0 getbalance "$B")
info "first recipient:  $A0 -> $A1 (got only the step-1 payment)"
info "second recipient: $B0 -> $B1"
[ $((A1 - A0)) -eq 500000000 ] || fail "the losing recipient kept $((A1 - A0 - 500000000)) from the reverted spend"
[ $((B1 - B0)) -eq 700000000 ] || fail "the winning recipient got $((B1 - B0)), expected 700000000"

say "OK: exactly one spend survived on every node ($(elapsed)s)"
