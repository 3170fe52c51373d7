#!/usr/bin/env bash
# fuzz/run.sh SECONDS [TARGET…]: runs every cargo-fuzz target (or the ones
# named) for SECONDS each, on the nightly toolchain, from its corpus in
# fuzz/corpus/TARGET (seeded from testdata/ where a capture fits), and prints
# one table: target, executions, corpus size, crashes. The corpus grows in
# fuzz/target/corpus/TARGET (not committed); fuzz/corpus/ holds the
# committed seeds. Crashes are kept in
# fuzz/artifacts/TARGET/; each one found becomes a regression test in the
# ordinary suite.
#
# MIN_EXECS=N: a target that ran fewer executions than N in SECONDS goes
# on (from the corpus it grew) until it has run N; the table gives each
# target's seconds too. SANITIZER (default none): the workspace forbids
# `unsafe`, so AddressSanitizer watches only dependencies' unsafe code at
# two to three times the cost per execution; SANITIZER=address runs it.
#
# Needs: rustup's nightly toolchain and cargo-fuzz
# (cargo install cargo-fuzz --locked).
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
seed() {
  local t=$1 dir=corpus/$1
  mkdir -p "$dir" "target/corpus/$t"
  if [ "$t" = ts_archive ] && [ -z "$(ls -A "$dir")" ]; then
    for f in ../testdata/ts/*.ts; do head -c 65536 "$f" > "$dir/$(basename "$f")"; done
  fi
}
MIN_EXECS=${MIN_EXECS:-0}
SANITIZER=${SANITIZER:-none}
cargo +nightly fuzz build -s "$SANITIZER" >/dev/null
# Executions one libFuzzer run reported in its log.
executed() {
  grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$1" | grep -oE '[0-9]+$' | tail -1 || true
}
rows=()
for t in "${TARGETS[@]}"; do
  seed "$t"
  log=$(mktemp)
  start=$SECONDS
  cargo +nightly fuzz run -s "$SANITIZER" "$t" "target/corpus/$t" "corpus/$t" -- \
    -max_total_time="$SECS" -print_final_stats=1 > "$log" 2>&1 || true
  execs=$(executed "$log")
  # Bounded: each round runs at least the missing count or stops on a crash.
  while [ -n "$execs" ] && [ "$execs" -lt "$MIN_EXECS" ]; do
    cargo +nightly fuzz run -s "$SANITIZER" "$t" "target/corpus/$t" "corpus/$t" -- \
      -runs=$((MIN_EXECS - execs)) -print_final_stats=1 > "$log" 2>&1 || true
    more=$(executed "$log")
    [ -n "$more" ] && [ "$more" -gt 0 ] || break
    execs=$((execs + more))
  done
  secs=$((SECONDS - start))
  corpus=$(find "target/corpus/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) 2>/dev/null | wc -l)
  rows+=("$(printf '%-16s %8s %12s %8s %8s' "$t" "$secs" "${execs:-?}" "$corpus" "$crashes")")
  printf '%s\n' "${rows[-1]}" >&2
  rm -f "$log"
done
printf '%-16s %8s %12s %8s %8s\n' target seconds executions corpus crashes
printf '%s\n' "${rows[@]}"
