#!/usr/bin/env bash
# The main job: the seed's failover demo on one machine. Installs tansu if missing, builds franzgate, then
# starts two Kafka-compatible clusters and the gateway, produces, switches with the admin API, and shows where
# each record lives. Prints each step as it goes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --locked --bin franzgate --example failover_demo
# Honour CARGO_TARGET_DIR (a shared build directory) like cargo does.
target="${CARGO_TARGET_DIR:-target}"
exec "$target/debug/examples/failover_demo" "$target/debug/franzgate"
