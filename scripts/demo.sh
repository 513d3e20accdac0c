#!/usr/bin/env bash
# The main job: Conduktor's cluster-switching demo, step for step, on one machine. Installs Apache Kafka (with
# MirrorMaker 2 and the command-line tools) if missing, builds franzgate, then starts two 3-broker Kafka
# clusters, MirrorMaker 2 and two franzgate instances with the seed's environment variables, and runs the
# seed's commands (kafka-topics, kafka-console-producer, kafka-console-consumer, curl), printing each with its
# output. Uses the seed's ports (19092-19094, 29092-29094, 6969-6971, 7969-7971, 8888, 8889) when they are
# free, else free ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --locked --bin franzgate --example failover_demo
# Honour CARGO_TARGET_DIR (a shared build directory) like cargo does.
target="${CARGO_TARGET_DIR:-target}"
exec "$target/debug/examples/failover_demo" "$target/debug/franzgate"
