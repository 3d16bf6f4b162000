#!/usr/bin/env bash
# Coverage-guided fuzzing of Cairn with AFL++ (cargo-afl, stable Rust): runs one target, or
# `all` of them one after another, for SECONDS each (default 600), then minimises what the
# fuzzer kept into node/fuzz/corpus/TARGET (afl-cmin) and copies any crash into
# node/fuzz/regressions/TARGET, where the smoke tests replay it from then on.
#
# Usage: scripts/fuzz.sh TARGET|all [SECONDS]
#        scripts/fuzz.sh min TARGET|all   re-minimise from the last run's queue
#        scripts/fuzz.sh list
#
# Environment:
#   CAIRN_FUZZ_TARGET_DIR  cargo target dir of the instrumented build (default target/afl)
#   CAIRN_FUZZ_OUT         AFL++ working directories (default target/fuzz-out)
#   ROCKSDB_LIB_DIR, ROCKSDB_STATIC=1  link an already built librocksdb.a instead of
#                          compiling RocksDB again for the instrumented build (optional)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGETS=(block_decode tx_decode p2p_frame rpc_request block_accept)
AFL_VERSION=0.18.2 # the `afl` crate's version in Cargo.lock: cargo-afl must match it

usage() { echo "usage: $0 TARGET|all|list [SECONDS]; targets: ${TARGETS[*]}" >&2; exit 2; }
fail() { echo "error: $*" >&2; exit 1; }

target="${1:-}"
seconds="${2:-600}"
mode=fuzz
[ -n "$target" ] || usage
if [ "$target" = list ]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi
if [ "$target" = min ]; then mode=min; target="${2:-}"; [ -n "$target" ] || usage; seconds=1; fi
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || fail "SECONDS must be a positive integer, not '$seconds'"
if [ "$target" = all ]; then
  chosen=("${TARGETS[@]}")
else
  [[ " ${TARGETS[*]} " == *" $target "* ]] || fail "unknown target '$target'; targets: ${TARGETS[*]}"
  chosen=("$target")
fi

if ! cargo afl --version 2>/dev/null | grep -q "$AFL_VERSION"; then
  echo "== installing cargo-afl $AFL_VERSION (builds AFL++; needs a C compiler and make)"
  cargo install cargo-afl --version "$AFL_VERSION" --locked
fi

# afl-cmin.awk rather than `cargo afl cmin`: the latter runs afl-cmin.py, which found no
# coverage at all on some of these persistent-mode targets; -e minimises for edges, not
# hit counts, which keeps a few dozen files instead of hundreds.
AFL_BIN="$(find "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs" -path "*/afl.rs-$AFL_VERSION/afl/bin/afl-cmin.awk" 2>/dev/null | head -n 1)"
AFL_BIN="$(dirname "${AFL_BIN:-/nonexistent/x}")"
[ -x "$AFL_BIN/afl-showmap" ] || fail "cargo-afl $AFL_VERSION is installed but its AFL++ binaries are not; run cargo afl config --build"

export CARGO_TARGET_DIR="${CAIRN_FUZZ_TARGET_DIR:-$ROOT/target/afl}"
OUT="${CAIRN_FUZZ_OUT:-$ROOT/target/fuzz-out}"
BIN="$CARGO_TARGET_DIR/release"
echo "== building the instrumented targets in $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo afl build --release --locked -p cairn-fuzz --features afl --bins)

# Files named by their content, so re-minimising the same inputs changes nothing in git.
store_by_hash() {
  local from="$1" to="$2" f
  mkdir -p "$to"
  for f in "$from"/*; do
    [ -f "$f" ] || continue
    cp "$f" "$to/$(sha256sum "$f" | cut -c1-16)"
  done
}

stat_of() { sed -n "s/^$1 *: *//p" "$2"; }

minimise() {
  local t="$1" work="$OUT/$1" corpus="$ROOT/node/fuzz/corpus/$1"
  [ -d "$work/afl/default/queue" ] || fail "no fuzzer queue for $t in $work; fuzz it first"
  echo "== minimising the corpus of $t"
  rm -rf "$work/cmin"
  PATH="$AFL_BIN:$PATH" AFL_PATH="$AFL_BIN" AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 \
    "$AFL_BIN/afl-cmin.awk" -e -i "$work/afl/default/queue" -o "$work/cmin" -- "$BIN/fuzz_$t" \
    >"$work/cmin.log" 2>&1 || fail "afl-cmin failed on $t; see $work/cmin.log"
  [ -n "$(ls -A "$work/cmin" 2>/dev/null)" ] || fail "afl-cmin kept nothing of $t (corpus left as it was); see $work/cmin.log"
  rm -rf "$corpus"
  store_by_hash "$work/cmin" "$corpus"
  echo "   $t: $(ls "$corpus" | wc -l) files in node/fuzz/corpus/$t"
}

fuzz_one() {
  local t="$1" work="$OUT/$1"
  local corpus="$ROOT/node/fuzz/corpus/$t" regressions="$ROOT/node/fuzz/regressions/$t"
  rm -rf "$work" && mkdir -p "$work/in"
  "$BIN/seed" "$work/seeds" "$t" >/dev/null
  cp "$work/seeds/$t"/* "$work/in/"
  if [ -d "$corpus" ]; then cp "$corpus"/* "$work/in/" 2>/dev/null || true; fi
  local dict=()
  if [ -f "$work/seeds/$t.dict" ]; then dict=(-x "$work/seeds/$t.dict"); fi
  echo "== fuzzing $t for ${seconds}s ($(ls "$work/in" | wc -l) starting inputs)"
  AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    cargo afl fuzz -V "$seconds" -i "$work/in" -o "$work/afl" "${dict[@]}" -- "$BIN/fuzz_$t" \
    >"$work/afl.log" 2>&1 || fail "afl-fuzz failed on $t; see $work/afl.log"
  local stats="$work/afl/default/fuzzer_stats"
  [ -f "$stats" ] || fail "afl-fuzz left no fuzzer_stats for $t; see $work/afl.log"

  minimise "$t"

  local crashes
  crashes=$(find "$work/afl/default/crashes" -type f -name 'id:*' | wc -l)
  if [ "$crashes" -gt 0 ]; then store_by_hash "$work/afl/default/crashes" "$regressions"; fi
  printf '%s: execs_done=%s run_time=%ss execs_per_sec=%s crashes=%s corpus=%s (kept by afl: %s)\n' \
    "$t" "$(stat_of execs_done "$stats")" "$(stat_of run_time "$stats")" \
    "$(stat_of execs_per_sec "$stats")" "$crashes" "$(ls "$corpus" | wc -l)" \
    "$(stat_of corpus_count "$stats")" | tee -a "$OUT/summary.txt"
  if [ "$crashes" -gt 0 ]; then
    echo "   crashes copied to $regressions: reproduce with cargo test -p cairn-fuzz --test it" >&2
  fi
}

for t in "${chosen[@]}"; do
  if [ "$mode" = min ]; then minimise "$t"; else fuzz_one "$t"; fi
done
