#!/usr/bin/env bash
# A Byzantine node: node2 runs with `--byzantine invalid-blocks` and mines a block with valid
# proof of work that spends a coin that does not exist. The honest nodes ban it, keep the
# block out, never mark an honest block invalid, and keep one chain together.
source "$(dirname "$0")/lib.sh"

say "Starting 3 nodes in $DIR; node2 is Byzantine (invalid-blocks)"
"$CAIRN" testnet --dir "$DIR" up -n 3 --byzantine node2=invalid-blocks "${GENESIS_ARGS[@]}"
rpc node0 generate 3 >/dev/null
wait_for 60 "all nodes at height 3" same_tip node0 node1 node2
EVIL=$(python3 -c "import json,sys; print([n['peer_id'] for n in json.load(open(sys.argv[1]))['nodes'] if n['name'] == 'node2'][0])" "$DIR/devnet.json")
info "node2 is $EVIL"

banned_by() { rpc "$1" listbanned | json "[b for b in d if b['peer_id'] == '$EVIL'][0]['reason']"; }

say "node2 mines a block spending a coin that does not exist"
BAD=$(rpc node2 generate 1 | json 'd[0]')
info "invalid block $BAD"
wait_for 30 "node0 bans node2" banned_by node0
wait_for 30 "node1 bans node2" banned_by node1
for n in node0 node1; do
  REASON=$(banned_by $n)
  info "$n listbanned: $EVIL — $REASON"
  case "$REASON" in *bad-txns-inputs-missingorspent*) ;; *) fail "$n banned node2 for '$REASON'";; esac
done

say "The honest nodes go on mining one chain; no honest block is invalid anywhere"
rpc node1 generate 2 >/dev/null
wait_for 60 "node0 and node1 agree" same_tip node0 node1
[ "$(height node0)" -eq 5 ] || fail "expected height 5 on node0, got $(height node0)"
for n in node0 node1; do
  INVALID=$(rpc $n getchaintips | json "[t['hash'] for t in d if t['status'] == 'invalid' and t['hash'] != '$BAD']")
  [ "$INVALID" = "[]" ] || fail "$n holds honest blocks marked invalid: $INVALID"
  BANNED_HONEST=$(rpc $n listbanned | json "[b['peer_id'] for b in d if b['peer_id'] != '$EVIL']")
  [ "$BANNED_HONEST" = "[]" ] || fail "$n banned honest peers: $BANNED_HONEST"
done
info "node0 getchaintips: $(rpc node0 getchaintips | json '[(t["height"], t["status"]) for t in d]')"

say "OK: the Byzantine node was banned and the honest nodes agree ($(elapsed)s)"
