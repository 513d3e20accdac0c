#!/usr/bin/env bash
# Fuzzes franzgate's parsers with cargo-fuzz (libFuzzer): every target in fuzz/fuzz_targets, RUNS executions each
# (default 10 million), seeded from fuzz/corpus (real client traffic, captured by
# `cargo test --test capture_corpus -- --ignored`, plus the config examples and SASL messages).
#
#   scripts/fuzz.sh                 # all targets, 10M runs each
#   RUNS=100000 scripts/fuzz.sh sasl frames
#
# Not part of the test command: it takes most of an hour on 2 cores. The toolchain here is stable, so
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its unstable flags, and `-s none` builds without a sanitizer (there
# is no unsafe code of ours to check; libFuzzer still finds panics, overflows, hangs and memory blow-ups).
# New inputs go to target/fuzz-work/<target>; a crash is saved under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-10000000}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
cargo fuzz build -O -s none
summary=()
for target in "${targets[@]}"; do
    work="target/fuzz-work/$target"
    mkdir -p "$work" "fuzz/corpus/$target"
    log="target/fuzz-work/$target.log"
    start=$(date +%s)
    if cargo fuzz run -O -s none "$target" "$work" "fuzz/corpus/$target" -- \
        -runs="$RUNS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        outcome="no crash"
    else
        outcome="FAILED (see $log and fuzz/artifacts/$target/)"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    summary+=("$target: $runs executions in $(( $(date +%s) - start )) s, $outcome")
    echo "${summary[-1]}"
done
printf '%s\n' "${summary[@]}" > target/fuzz-work/summary.txt
