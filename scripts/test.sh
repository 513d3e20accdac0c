#!/usr/bin/env bash
# The test command: installs what the tests need (tansu, kafka-python, build packages) when missing, then
# runs every test of the workspace against real brokers and real clients, and closes with one total line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export FRANZGATE_TOOLS="${FRANZGATE_TOOLS:-$HOME/.cache/franzgate-tools}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets --locked --no-fail-fast "$@" 2>&1 | tee "$log"
# cargo prints one "test result" line per test binary, the last often for a target with no tests; the total
# below is the closing line that counts.
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
