#!/usr/bin/env bash
# The test command: installs what the tests need (tansu, kafka-python, build packages) when missing, then
# runs every test of the workspace against real brokers and real clients.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export FRANZGATE_TOOLS="${FRANZGATE_TOOLS:-$HOME/.cache/franzgate-tools}"
cargo test --workspace --all-targets --locked "$@"
