#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine, and nothing when it is already there.
#   - tansu (Kafka-compatible broker) built from crates.io into a cache outside the checkout, because the
#     build takes 15 to 30 minutes and every clone on this machine can reuse it;
#   - kafka-python (an independent client implementation) in a virtualenv beside it;
#   - the system packages the rdkafka crate needs to build librdkafka.
# Prints the tansu path on the last line of stdout-free logs: callers read $FRANZGATE_TOOLS/bin/tansu.
set -euo pipefail

TOOLS="${FRANZGATE_TOOLS:-$HOME/.cache/franzgate-tools}"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
mkdir -p "$TOOLS"

log() { printf '[install-deps] %s\n' "$*" >&2; }

# System packages for librdkafka's build (rdkafka-sys compiles it from source with make).
need_apt=()
command -v make >/dev/null || need_apt+=(make)
command -v cc >/dev/null || need_apt+=(gcc)
command -v cmake >/dev/null || need_apt+=(cmake)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
# rdkafka (tests) is built with SSL and SASL SCRAM, which need OpenSSL headers.
[ -e /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# tansu, with dynostore (memory:// storage, most tests) and libsql (sqlite:// storage, which survives a restart:
# the SASL tests create SCRAM users, then restart the broker with --authentication).
TANSU_FEATURES="dynostore,libsql"
if [ -x "$TOOLS/bin/tansu" ] && "$TOOLS/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION" \
   && [ "$(cat "$TOOLS/tansu.features" 2>/dev/null)" = "$TANSU_FEATURES" ]; then
  log "tansu $TANSU_VERSION ($TANSU_FEATURES) present at $TOOLS/bin/tansu"
else
  log "building tansu $TANSU_VERSION with $TANSU_FEATURES into $TOOLS (15 to 30 minutes on 2 cores, once per machine)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" --root "$TOOLS" \
    --target-dir "$TOOLS/tansu-target" --force >&2
  rm -rf "$TOOLS/tansu-target"
  echo "$TANSU_FEATURES" > "$TOOLS/tansu.features"
fi

# kafka-python in its own virtualenv (independent client for the end-to-end check).
if [ -x "$TOOLS/venv/bin/python" ] && "$TOOLS/venv/bin/python" -c 'import kafka' 2>/dev/null; then
  log "kafka-python present in $TOOLS/venv"
else
  log "installing kafka-python into $TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q 'kafka-python==2.2.*' >&2
fi
