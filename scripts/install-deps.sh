#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine, and nothing when it is already there.
#   - Apache Kafka (broker in KRaft mode, command-line tools, MirrorMaker 2) from Maven Central into a cache
#     outside the checkout, with small launchers in $FRANZGATE_TOOLS/kafka/bin (kafka-topics, ...);
#   - kafka-python (an independent client implementation) in a virtualenv beside it;
#   - the system packages the rdkafka crate needs to build librdkafka.
# Callers find Kafka's launchers in $FRANZGATE_TOOLS/kafka/bin and Python in $FRANZGATE_TOOLS/venv.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${FRANZGATE_TOOLS:-$HOME/.cache/franzgate-tools}"
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

# kafka-python 3.x in its own virtualenv (independent client for the end-to-end checks). The installed
# version is checked, not just `import kafka`: an older venv (2.x) is upgraded in place.
KAFKA_PYTHON_SERIES="3."
kafka_python_version() {
  "$TOOLS/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kafka-python"))' 2>/dev/null || true
}
if [ -x "$TOOLS/venv/bin/python" ] && [[ "$(kafka_python_version)" == "$KAFKA_PYTHON_SERIES"* ]]; then
  log "kafka-python $(kafka_python_version) present in $TOOLS/venv"
else
  log "installing kafka-python ${KAFKA_PYTHON_SERIES}x into $TOOLS/venv (found: $(kafka_python_version))"
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --upgrade 'kafka-python>=3,<4' >&2
  [[ "$(kafka_python_version)" == "$KAFKA_PYTHON_SERIES"* ]] || { log "kafka-python 3.x did not install"; exit 1; }
fi

# --- client matrix: confluent-kafka (Python, librdkafka inside) --- the release tests/client_confluent_kafka.rs
# was last run with (the latest on PyPI then; raise it to the newest release, major unpinned), into the same venv
# as kafka-python; the driver is tests/clients/python/driver.py.
CONFLUENT_KAFKA_VERSION="2.16.1"
confluent_kafka_version() {
  "$TOOLS/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("confluent-kafka"))' 2>/dev/null || true
}
if [ "$(confluent_kafka_version)" = "$CONFLUENT_KAFKA_VERSION" ]; then
  log "confluent-kafka $CONFLUENT_KAFKA_VERSION present in $TOOLS/venv"
else
  log "installing confluent-kafka $CONFLUENT_KAFKA_VERSION into $TOOLS/venv (found: $(confluent_kafka_version))"
  "$TOOLS/venv/bin/pip" install -q "confluent-kafka==$CONFLUENT_KAFKA_VERSION" >&2
  [ "$(confluent_kafka_version)" = "$CONFLUENT_KAFKA_VERSION" ] || { log "confluent-kafka did not install"; exit 1; }
  log "confluent-kafka $CONFLUENT_KAFKA_VERSION installed (librdkafka $("$TOOLS/venv/bin/python" -c 'import confluent_kafka as c; print(c.libversion()[0])'))"
fi
# --- end confluent-kafka ---

# Apache Kafka from Maven Central: every runtime jar of the broker, the tools and MirrorMaker 2 in one folder
# (scripts/kafka/pom.xml pins the release), plus launchers named like Kafka's own bin/*.sh scripts. The jars are
# the classpath of every launcher; log4j2.properties keeps them quiet.
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
KAFKA_DIR="$TOOLS/kafka"
if [ -f "$KAFKA_DIR/libs/kafka_2.13-$KAFKA_VERSION.jar" ] && [ -f "$KAFKA_DIR/installed" ] \
   && cmp -s scripts/kafka/pom.xml "$KAFKA_DIR/pom.xml"; then
  log "Apache Kafka $KAFKA_VERSION present in $KAFKA_DIR"
else
  # Kafka 4.x brokers need Java 17 or newer; Maven fetches the jars. Both from Debian when missing.
  need_java=()
  command -v java >/dev/null || need_java+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || need_java+=(maven)
  if [ ${#need_java[@]} -gt 0 ]; then
    log "installing ${need_java[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_java[@]}" >/dev/null
  fi
  log "fetching Apache Kafka $KAFKA_VERSION (broker, tools, MirrorMaker 2) from Maven Central into $KAFKA_DIR"
  rm -rf "$KAFKA_DIR" && mkdir -p "$KAFKA_DIR/bin" "$KAFKA_DIR/config"
  cp scripts/kafka/pom.xml "$KAFKA_DIR/pom.xml"
  mvn -q -B -f "$KAFKA_DIR/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_DIR/libs" >&2
fi
# The launchers and the log config are rewritten every time (cheap), so a change to them reaches old caches.
cp scripts/kafka/log4j2.properties "$KAFKA_DIR/config/log4j2.properties"
launcher() { # name main-class default-heap
  cat > "$KAFKA_DIR/bin/$1" <<LAUNCHER
#!/usr/bin/env bash
# $1, as in Apache Kafka's bin/$1.sh: $2 on the jars from Maven Central.
# KAFKA_HEAP_OPTS and KAFKA_OPTS are honoured like Kafka's own scripts do.
exec "\${JAVA:-java}" \${KAFKA_HEAP_OPTS:-$3} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \\
  -Dlog4j2.configurationFile="$KAFKA_DIR/config/log4j2.properties" \${KAFKA_OPTS:-} \\
  -cp "$KAFKA_DIR/libs/*" $2 "\$@"
LAUNCHER
  chmod +x "$KAFKA_DIR/bin/$1"
}
launcher kafka-server-start kafka.Kafka "-Xms256m -Xmx512m"
launcher kafka-storage kafka.tools.StorageTool "-Xmx128m"
launcher kafka-topics org.apache.kafka.tools.TopicCommand "-Xmx128m"
launcher kafka-console-producer org.apache.kafka.tools.ConsoleProducer "-Xmx128m"
launcher kafka-console-consumer org.apache.kafka.tools.consumer.ConsoleConsumer "-Xmx128m"
launcher kafka-consumer-groups org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "-Xmx128m"
launcher kafka-producer-perf-test org.apache.kafka.tools.ProducerPerformance "-Xmx512m"
launcher kafka-consumer-perf-test org.apache.kafka.tools.ConsumerPerformance "-Xmx512m"
launcher connect-mirror-maker org.apache.kafka.connect.mirror.MirrorMaker "-Xms256m -Xmx512m"
# Proves the install runs (a JVM, the jars, a main class), once.
if [ ! -f "$KAFKA_DIR/installed" ]; then
  "$KAFKA_DIR/bin/kafka-topics" --version >&2
  echo "$KAFKA_VERSION" > "$KAFKA_DIR/installed"
fi

# --- client matrix: kafkajs (Node.js) --- tests/clients/kafkajs pins the release in package.json and
# package-lock.json; `npm ci` installs exactly that into $TOOLS/clients/kafkajs, again only when the lockfile
# changed (its checksum is kept beside it). tests/client_kafkajs.rs runs the driver from the checkout with
# `node`, which loads kafkajs from there.
KAFKAJS_SRC=tests/clients/kafkajs
KAFKAJS_DIR="$TOOLS/clients/kafkajs"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing nodejs and npm (for the kafkajs client)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
kafkajs_lock_sum=$(sha256sum "$KAFKAJS_SRC/package-lock.json" | cut -d' ' -f1)
if [ -f "$KAFKAJS_DIR/node_modules/kafkajs/package.json" ] \
   && [ "$(cat "$KAFKAJS_DIR/lock.sha256" 2>/dev/null)" = "$kafkajs_lock_sum" ]; then
  log "kafkajs $(node -p 'require(process.argv[1]).version' "$KAFKAJS_DIR/node_modules/kafkajs/package.json") present in $KAFKAJS_DIR"
else
  log "installing kafkajs (npm ci) into $KAFKAJS_DIR"
  rm -rf "$KAFKAJS_DIR" && mkdir -p "$KAFKAJS_DIR"
  cp "$KAFKAJS_SRC/package.json" "$KAFKAJS_SRC/package-lock.json" "$KAFKAJS_DIR/"
  (cd "$KAFKAJS_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$kafkajs_lock_sum" > "$KAFKAJS_DIR/lock.sha256"
  log "kafkajs $(node -p 'require(process.argv[1]).version' "$KAFKAJS_DIR/node_modules/kafkajs/package.json") installed"
fi
# --- end kafkajs ---

# A Java program of the tests: the runtime dependencies of SRC/pom.xml (whose ARTIFACT is at VERSION) copied from
# Maven Central into DIR/libs, and SRC/MAIN.java compiled against them into DIR/classes, again whenever the
# source or the pom changes (their checksum sits beside them).
install_java_program() {
  local src="$1" main="$2" artifact="$3" version="$4" dir="$5"
  if [ -f "$dir/libs/$artifact-$version.jar" ] && cmp -s "$src/pom.xml" "$dir/pom.xml"; then
    log "$artifact $version present in $dir/libs"
  else
    log "fetching $artifact $version from Maven Central into $dir/libs"
    rm -rf "$dir" && mkdir -p "$dir"
    mvn -q -B -f "$src/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/libs" >&2
    cp "$src/pom.xml" "$dir/pom.xml"
  fi
  local sum
  sum=$(cat "$src/$main.java" "$src/pom.xml" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$dir/classes/source.sha256" 2>/dev/null)" != "$sum" ]; then
    log "compiling $src/$main.java against $artifact $version"
    rm -rf "$dir/classes"
    javac -Xlint:all -Werror -d "$dir/classes" -cp "$dir/libs/*" "$src/$main.java" >&2
    echo "$sum" > "$dir/classes/source.sha256"
  fi
}

# --- Java client matrix driver (tests/client_java.rs) ---
# kafka-clients at the release tests/clients/java/pom.xml pins, alone in $TOOLS/clients/java/libs (the broker's
# jars above may be an older release), and tests/clients/java/Driver.java compiled against it into
# $TOOLS/clients/java/classes, again whenever the source or the pom changes (their checksum sits beside them).
JAVA_CLIENT_DIR="$TOOLS/clients/java"
JAVA_CLIENT_VERSION=$(sed -n 's:.*<kafka-clients.version>\(.*\)</kafka-clients.version>.*:\1:p' tests/clients/java/pom.xml)
need_jdk=()
command -v javac >/dev/null || need_jdk+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need_jdk+=(maven)
if [ ${#need_jdk[@]} -gt 0 ]; then
  log "installing ${need_jdk[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_jdk[@]}" >/dev/null
fi
install_java_program tests/clients/java Driver kafka-clients "$JAVA_CLIENT_VERSION" "$JAVA_CLIENT_DIR"
# --- end Java client matrix driver ---

# --- Kafka Streams word count (tests/streams_switch.rs) ---
# kafka-streams at the release tests/clients/java-streams/pom.xml pins (it must be kafka-clients' release above),
# without RocksDB (the word count's store is in memory), in $TOOLS/clients/java-streams/libs, and
# tests/clients/java-streams/StreamsWordCount.java compiled against it into $TOOLS/clients/java-streams/classes,
# again whenever the source or the pom changes (their checksum sits beside them).
STREAMS_DIR="$TOOLS/clients/java-streams"
STREAMS_VERSION=$(sed -n 's:.*<kafka-streams.version>\(.*\)</kafka-streams.version>.*:\1:p' tests/clients/java-streams/pom.xml)
[ "$STREAMS_VERSION" = "$JAVA_CLIENT_VERSION" ] || {
  log "kafka-streams $STREAMS_VERSION (tests/clients/java-streams/pom.xml) is not kafka-clients $JAVA_CLIENT_VERSION"
  exit 1
}
install_java_program tests/clients/java-streams StreamsWordCount kafka-streams "$STREAMS_VERSION" "$STREAMS_DIR"
# --- end Kafka Streams word count ---

# --- franz-go client matrix driver (tests/client_franz_go.rs) --- tests/clients/franz-go pins the release in
# go.mod/go.sum; the driver is built from the Go module proxy into $TOOLS/clients/franz-go/driver, again
# whenever its sources change (their checksum sits beside it).
FRANZ_GO_DIR="$TOOLS/clients/franz-go"
FRANZ_GO_VERSION=$(sed -n 's:^require github.com/twmb/franz-go \(v[^ ]*\).*:\1:p' tests/clients/franz-go/go.mod)
command -v go >/dev/null || { log "go is missing: the franz-go driver needs Go (see tests/clients/franz-go/go.mod)"; exit 1; }
franz_go_sum=$(cat tests/clients/franz-go/go.mod tests/clients/franz-go/go.sum tests/clients/franz-go/*.go | sha256sum | cut -d' ' -f1)
if [ -x "$FRANZ_GO_DIR/driver" ] && [ "$(cat "$FRANZ_GO_DIR/source.sha256" 2>/dev/null)" = "$franz_go_sum" ]; then
  log "franz-go $FRANZ_GO_VERSION driver present in $FRANZ_GO_DIR"
else
  log "building the franz-go $FRANZ_GO_VERSION driver into $FRANZ_GO_DIR"
  mkdir -p "$FRANZ_GO_DIR"
  (cd tests/clients/franz-go && GOFLAGS=-mod=mod go build -trimpath -o "$FRANZ_GO_DIR/driver" .) >&2
  echo "$franz_go_sum" > "$FRANZ_GO_DIR/source.sha256"
fi
# --- end franz-go client matrix driver ---
