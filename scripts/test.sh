#!/usr/bin/env bash
# The test command: installs what the tests need (Apache Kafka and MirrorMaker 2 from Maven Central,
# kafka-python, build packages) when missing, then runs every test of the workspace against real Kafka clusters
# and real clients, and closes with one total line and the suite's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/install-deps.sh
export FRANZGATE_TOOLS="${FRANZGATE_TOOLS:-$HOME/.cache/franzgate-tools}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# The client tests write the README's client matrix cells here; a full run starts from none.
[ $# -eq 0 ] && rm -rf target/client-matrix
cargo test --workspace --all-targets --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
if [ $# -eq 0 ]; then
    python3 scripts/client-matrix.py --check || status=1
fi
# cargo prints one "test result" line per test binary, the last often for a target with no tests; the total
# below is the closing line that counts.
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
echo "test suite duration: $(( $(date +%s) - started )) s (install step included)"
echo "tests: $passed passed, $failed failed"
exit "$status"
