#!/usr/bin/env bash
# Forks: partition the network, let both sides mine, look at the chain tips, heal, and
# watch the heavier chain win with a reorg.
source "$(dirname "$0")/lib.sh"

say "Starting 3 nodes in $DIR (mining on demand) with a common history of 5 blocks"
"$CAIRN" testnet --dir "$DIR" up -n 3 "${GENESIS_ARGS[@]}"
rpc node0 generate 5 >/dev/null
wait_for 60 "all nodes at height 5" same_tip node0 node1 node2
FORK_HEIGHT=$(height node0)

say "Partition node0,node1 | node2"
"$CAIRN" testnet --dir "$DIR" partition node0,node1 node2

say "Both sides mine: node0 adds 2 blocks, node2 adds 4"
rpc node0 generate 2 >/dev/null
rpc node2 generate 4 >/dev/null
wait_for 60 "node1 follows node0" same_tip node0 node1
LIGHT=$(tip node0); HEAVY=$(tip node2)
info "side A (node0,node1): height $(height node0), tip $LIGHT"
info "side B (node2):       height $(height node2), tip $HEAVY"
say "getchaintips on each side"
info "node0: $(rpc node0 getchaintips | json '[(t["height"], t["status"]) for t in d]')"
info "node2: $(rpc node2 getchaintips | json '[(t["height"], t["status"]) for t in d]')"

say "Heal: node0 and node1 reorganise onto node2's heavier chain"
HEAL_START=$(date +%s.%N)
"$CAIRN" testnet --dir "$DIR" heal
wait_for 120 "all nodes on node2's tip" same_tip node2 node0 node1
HEAL_END=$(date +%s.%N)
[ "$(tip node0)" = "$HEAVY" ] || fail "node0 is not on the heavier chain"
REVERTED=$(rpc node0 getchaintips | json "[t['branchlen'] for t in d if t['hash'] == '$LIGHT'][0]")
STATUS=$(rpc node0 getchaintips | json "[t['status'] for t in d if t['hash'] == '$LIGHT'][0]")
CONNECTED=$(( $(height node0) - FORK_HEIGHT ))
info "reorg on node0: depth $REVERTED (reverted $REVERTED blocks, connected $CONNECTED)"
info "the losing branch is now '$STATUS' in node0's getchaintips"
[ "$REVERTED" -eq 2 ] || fail "expected a reorg of depth 2, got $REVERTED"
[ "$STATUS" = valid-fork ] || fail "expected the losing branch to be valid-fork, got $STATUS"
info "converged $(python3 -c "print(f'{$HEAL_END - $HEAL_START:.2f}')") s after heal began"

say "OK: the heavier chain won on every node ($(elapsed)s)"
