"""Client-matrix driver for the Python clients: confluent-kafka (librdkafka inside) and kafka-python (pure Python).

Implements the driver contract of tests/common/client_matrix.rs:
    driver.py produce client=C bootstrap=B topic=T count=N [idempotent=true] [acks=all] [rate=R] [key_prefix=K]
              [transactional_id=X [retry_aborted=true]]
    driver.py consume client=C bootstrap=B topic=T group=G count=N [protocol=classic|consumer] [timeout_ms=M]
plus the SASL keys `user=U password=P mechanism=PLAIN|SCRAM-SHA-256` on both. `client=confluent-kafka|kafka-python`
selects the library. Keys only this driver knows:
    api_version=3.0   kafka-python: the broker version to assume instead of asking (3.0 pins Fetch v12 and
                      FindCoordinator v4, the versions of issue 18's two kafka-python failures)
    assign=true       consume: assign every partition of the topic instead of joining group G (no commits)
    transactional_id=X, retry_aborted=true
                      produce, confluent-kafka only: transactions of 100 records, each committed; a transaction
                      that fails with an abortable error is aborted and its records sent again in a new one (as
                      the Java driver's retry_aborted=true); the result adds `aborts` and `abort_reasons`
and one command beyond the contract, to check which protocol a group used (confluent-kafka only):
    driver.py group-type client=confluent-kafka bootstrap=B group=G   ->  {"group": G, "type": "CONSUMER"|"CLASSIC"|...}

JSON lines on stdout, the last one the result; exit 0 when the command did what it was asked. Errors that reach
the application (delivery reports, exceptions, consumer error events) are listed in the result's `errors`.
kafka-python 3.x has no KIP-848 consumer: `protocol=consumer` is refused with exit code 2 (the result's error
starts with `unsupported:`).
"""
import json
import sys
import time

USAGE_EXIT = 2
COMMON_KEYS = {"client", "bootstrap", "topic", "count", "user", "password", "mechanism", "api_version"}
PRODUCE_KEYS = COMMON_KEYS | {"idempotent", "acks", "rate", "key_prefix", "transactional_id", "retry_aborted"}
CONSUME_KEYS = COMMON_KEYS | {"group", "protocol", "timeout_ms", "assign"}
GROUP_TYPE_KEYS = {"client", "bootstrap", "group"}
COMMAND_KEYS = {"produce": PRODUCE_KEYS, "consume": CONSUME_KEYS, "group-type": GROUP_TYPE_KEYS}


def emit(value):
    print(json.dumps(value), flush=True)


def fail(message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(USAGE_EXIT)


def parse(argv):
    if len(argv) < 2 or argv[1] not in COMMAND_KEYS:
        fail("usage: driver.py produce|consume|group-type key=value ...")
    command, allowed = argv[1], COMMAND_KEYS[argv[1]]
    options = {}
    for arg in argv[2:]:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            fail(f"unknown or malformed argument for {command}: {arg!r} (allowed: {sorted(allowed)})")
        options[key] = value
    required = {"produce": ("client", "bootstrap", "topic", "count"), "consume": ("client", "bootstrap", "topic", "count",
                "group"), "group-type": ("client", "bootstrap", "group")}[command]
    for key in required:
        if key not in options and not (key == "group" and options.get("assign") == "true"):
            fail(f"{command} needs {key}=")
    if options["client"] not in ("confluent-kafka", "kafka-python"):
        fail(f"client must be confluent-kafka or kafka-python, not {options['client']!r}")
    if "transactional_id" in options and (options["client"] != "confluent-kafka"
                                          or options.get("retry_aborted") != "true"):
        fail("transactional_id= needs client=confluent-kafka and retry_aborted=true")
    if options.get("protocol", "classic") not in ("classic", "consumer"):
        fail(f"protocol must be classic or consumer, not {options['protocol']!r}")
    if options.get("mechanism", "PLAIN") not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        fail(f"unsupported mechanism {options['mechanism']!r}")
    return command, options


class Pacer:
    """At most `rate` records per second (no limit without a rate), measured from the start."""

    def __init__(self, rate):
        self.rate, self.start, self.sent = rate, time.monotonic(), 0

    def wait(self):
        if self.rate:
            due = self.start + self.sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.sent += 1


class Progress:
    """Counts acknowledgements (or records) and prints `{key: n}` at every hundred."""

    def __init__(self, key):
        self.key, self.n = key, 0

    def add(self, n=1):
        for _ in range(n):
            self.n += 1
            if self.n % 100 == 0:
                emit({self.key: self.n})


# === confluent-kafka ===

def confluent_version():
    """The package's release (`version()` was a (string, int) pair in older releases, is a string in newer ones)."""
    import confluent_kafka
    version = confluent_kafka.version()
    return version if isinstance(version, str) else version[0]


def confluent_versions():
    import confluent_kafka
    return {"client": "confluent-kafka", "version": confluent_version(), "librdkafka": confluent_kafka.libversion()[0]}


def confluent_config(o):
    from confluent_kafka import KafkaError

    errors = []

    def on_error(err):
        # librdkafka reports transient states here too (a connection the gateway closed on a switch, all brokers
        # down for a moment) and recovers by itself; only a fatal error reaches the application.
        if err.fatal() or err.code() == KafkaError._AUTHENTICATION:
            errors.append(f"client error: {err}")

    config = {"bootstrap.servers": o["bootstrap"], "error_cb": on_error}
    if "user" in o:
        config.update({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": o.get("mechanism", "PLAIN"),
                       "sasl.username": o["user"], "sasl.password": o.get("password", "")})
    return config, errors


def confluent_produce(o):
    import confluent_kafka
    config, errors = confluent_config(o)
    config.update({"acks": o.get("acks", "all"), "enable.idempotence": o.get("idempotent", "false") == "true",
                   "linger.ms": 5})
    if "transactional_id" in o:
        return confluent_produce_transactions(o, config, errors)
    producer = confluent_kafka.Producer(config)
    acked = Progress("acked")

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"delivery of {msg.key().decode()}: {err}")
        else:
            acked.add()

    pacer, prefix = Pacer(float(o.get("rate", 0))), o.get("key_prefix", "k")
    sent, fatal = Progress("sent"), None
    for i in range(int(o["count"])):
        pacer.wait()
        key = f"{prefix}-{i}".encode()
        while True:
            try:
                producer.produce(o["topic"], key=key, value=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
            except confluent_kafka.KafkaException as e:  # a fatal error: the producer takes no more records
                fatal = f"produce of {key.decode()}: {e}"
                break
        if fatal:
            errors.append(fatal)
            break
        sent.add()
        producer.poll(0)
    try:
        remaining = producer.flush(120)
    except Exception as e:  # after a fatal error flush() may raise (even a SystemError): report it
        errors.append(f"flush: {type(e).__name__}: {e}")
        remaining = 0
    if remaining:
        errors.append(f"{remaining} records not acknowledged within 120 s")
    return {**confluent_versions(), "produced": acked.n, "errors": errors}


TRANSACTION_SIZE = 100
MAX_ABORTS_PER_TRANSACTION = 20
COMMIT_ATTEMPTS = 3


class Fatal(Exception):
    """A producer error the application cannot recover from: the run stops."""


def confluent_produce_transactions(o, config, errors):
    """Transactions of 100 records as an exactly-once application writes them: one that fails with an abortable
    error (a delivery report, produce(), commit_transaction()) is aborted and its records sent again in a new one;
    a fatal error is reported and stops the run. `produced` and the `acked` progress count records of committed
    transactions."""
    import confluent_kafka
    config.update({"transactional.id": o["transactional_id"], "enable.idempotence": True})
    producer = confluent_kafka.Producer(config)
    pacer, prefix, count = Pacer(float(o.get("rate", 0))), o.get("key_prefix", "k"), int(o["count"])
    acked, abort_reasons = Progress("acked"), []
    try:
        producer.init_transactions(60)
        for first in range(0, count, TRANSACTION_SIZE):
            end = min(count, first + TRANSACTION_SIZE)
            aborts = 0
            while (reason := confluent_transaction(producer, o["topic"], prefix, first, end, pacer)) is not None:
                abort_reasons.append(f"{prefix}-{first}..{end - 1}: {reason}")
                aborts += 1
                if aborts > MAX_ABORTS_PER_TRANSACTION:
                    raise Fatal(f"gave up after {aborts} aborts: {reason}")
            acked.add(end - first)
    except Fatal as e:
        errors.append(f"fatal: {e}")
    except confluent_kafka.KafkaException as e:  # init_transactions: nothing to abort yet
        errors.append(f"init_transactions: {e}")
    return {**confluent_versions(), "produced": acked.n, "aborts": len(abort_reasons), "abort_reasons": abort_reasons,
            "errors": errors}


def confluent_transaction(producer, topic, prefix, first, end, pacer):
    """One transaction of records `first` .. `end - 1`: None once committed, the reason when it was aborted."""
    import confluent_kafka
    failed = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(f"{msg.key().decode()}: {err}")

    try:
        producer.begin_transaction()
        for i in range(first, end):
            pacer.wait()
            key = f"{prefix}-{i}".encode()
            if not confluent_produce_in_transaction(producer, topic, key, on_delivery):
                break  # the transaction failed: commit_transaction() below raises its error
            if (i + 1) % 100 == 0:
                emit({"sent": i + 1})
            producer.poll(0)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                producer.commit_transaction(60)
                return None
            except confluent_kafka.KafkaException as e:  # a timed-out commit may be under way: only retry it
                error = e.args[0]
                if not error.retriable() or error.txn_requires_abort() or attempt == COMMIT_ATTEMPTS:
                    raise
    except confluent_kafka.KafkaException as e:
        error = e.args[0]
        if not error.txn_requires_abort():
            raise Fatal(str(error)) from e
        reason = str(error) + (f" (first failed delivery {failed[0]})" if failed else "")
        try:
            producer.abort_transaction(60)
        except confluent_kafka.KafkaException as abort_error:
            raise Fatal(f"abort_transaction after {reason} failed: {abort_error}") from abort_error
        return reason


def confluent_produce_in_transaction(producer, topic, key, on_delivery):
    """produce() within a transaction: False when the transaction already failed (librdkafka refuses the record
    with _STATE then; the abortable or fatal error itself comes from commit_transaction())."""
    import confluent_kafka
    while True:
        try:
            producer.produce(topic, key=key, value=key, on_delivery=on_delivery)
            return True
        except BufferError:
            producer.poll(0.1)
        except confluent_kafka.KafkaException as e:
            if e.args[0].code() == confluent_kafka.KafkaError._STATE:
                return False
            raise


def confluent_consume(o):
    import confluent_kafka
    from confluent_kafka import KafkaError, KafkaException, TopicPartition
    config, errors = confluent_config(o)
    config.update({"group.id": o.get("group", "unused"), "auto.offset.reset": "earliest",
                   "enable.auto.commit": False, "group.protocol": o.get("protocol", "classic")})
    consumer = confluent_kafka.Consumer(config)
    if o.get("assign") == "true":
        metadata = consumer.list_topics(o["topic"], timeout=30)
        partitions = metadata.topics[o["topic"]].partitions
        consumer.assign([TopicPartition(o["topic"], p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
    else:
        consumer.subscribe([o["topic"]])
    keys, seen = set(), Progress("consumed")
    deadline = time.monotonic() + int(o.get("timeout_ms", 60000)) / 1000
    want = int(o["count"])
    while len(keys) < want and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=500, timeout=0.5)
        fresh = 0
        for msg in batch:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(f"consume: {msg.error()}")
                continue
            keys.add(msg.key().decode())
            fresh += 1
        seen.add(fresh)
        if fresh and o.get("assign") != "true":
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:
                errors.append(f"commit: {e}")
    consumer.close()
    return {**confluent_versions(), "consumed": len(keys), "keys": sorted(keys), "errors": errors}


def confluent_group_type(o):
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": o["bootstrap"]})
    listed = admin.list_consumer_groups(request_timeout=30).result()
    types = {g.group_id: getattr(g.type, "name", str(g.type)) for g in listed.valid}
    errors = [str(e) for e in listed.errors]
    if o["group"] not in types:
        errors.append(f"group {o['group']} not listed")
    return {**confluent_versions(), "group": o["group"], "type": types.get(o["group"]), "errors": errors}


# === kafka-python ===

def kafka_python_config(o):
    config = {"bootstrap_servers": o["bootstrap"]}
    if "api_version" in o:
        config["api_version"] = tuple(int(part) for part in o["api_version"].split("."))
    if "user" in o:
        config.update({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": o.get("mechanism", "PLAIN"),
                       "sasl_plain_username": o["user"], "sasl_plain_password": o.get("password", "")})
    return config


def kafka_python_produce(o):
    import kafka
    from kafka import KafkaProducer
    config = kafka_python_config(o)
    acks = o.get("acks", "all")
    config.update({"acks": acks if acks == "all" else int(acks), "linger_ms": 5,
                   "enable_idempotence": o.get("idempotent", "false") == "true"})
    errors, acked = [], Progress("acked")
    try:
        producer = KafkaProducer(**config)
        pacer, prefix = Pacer(float(o.get("rate", 0))), o.get("key_prefix", "k")
        for i in range(int(o["count"])):
            pacer.wait()
            key = f"{prefix}-{i}".encode()
            future = producer.send(o["topic"], key=key, value=key)
            future.add_callback(lambda _metadata: acked.add())
            future.add_errback(lambda e, key=key: errors.append(f"delivery of {key.decode()}: {e!r}"))
            if (i + 1) % 100 == 0:
                emit({"sent": i + 1})
        producer.flush(timeout=120)
        producer.close(timeout=30)
    except Exception as e:  # every failure the library raises reaches the application: report it
        errors.append(f"{type(e).__name__}: {e}")
    return {"client": "kafka-python", "version": kafka.__version__, "produced": acked.n, "errors": errors}


def kafka_python_consume(o):
    import kafka
    from kafka import KafkaConsumer, TopicPartition
    if o.get("protocol", "classic") == "consumer":
        reason = f"unsupported: kafka-python {kafka.__version__} has no KIP-848 consumer (group.protocol=consumer)"
        emit({"client": "kafka-python", "version": kafka.__version__, "consumed": 0, "keys": [], "errors": [reason]})
        fail(reason)
    config = kafka_python_config(o)
    config.update({"auto_offset_reset": "earliest", "enable_auto_commit": False})
    errors, keys, seen, versions = [], set(), Progress("consumed"), {}
    want = int(o["count"])
    assign = o.get("assign") == "true"
    try:
        if assign:
            consumer = KafkaConsumer(**config)
            partitions = consumer.partitions_for_topic(o["topic"]) or set()
            consumer.assign([TopicPartition(o["topic"], p) for p in partitions])
            consumer.seek_to_beginning()
        else:
            consumer = KafkaConsumer(o["topic"], group_id=o["group"], **config)
        deadline = time.monotonic() + int(o.get("timeout_ms", 60000)) / 1000
        while len(keys) < want and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            fresh = [r.key.decode() for records in batch.values() for r in records]
            keys.update(fresh)
            seen.add(len(fresh))
            if fresh and not assign:
                try:
                    consumer.commit()
                except Exception as e:
                    errors.append(f"commit: {type(e).__name__}: {e}")
        versions = kafka_python_versions_used(consumer)
        consumer.close()
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}")
    return {"client": "kafka-python", "version": kafka.__version__, "consumed": len(keys), "keys": sorted(keys),
            "errors": errors, "api_versions": versions}


def kafka_python_versions_used(consumer):
    """The Fetch and FindCoordinator versions the consumer used, from its client's negotiated table (a private
    attribute, so best effort: empty when the library changed). kafka-python 3.0's fetcher asks for Fetch v12 at
    most (its `max_version = 12`), whatever the broker offers."""
    try:
        from kafka.protocol.consumer import FetchRequest
        from kafka.protocol.metadata import FindCoordinatorRequest
        client = consumer._client
        return {"Fetch": client.api_version(FetchRequest, max_version=12),
                "FindCoordinator": client.api_version(FindCoordinatorRequest, max_version=float("inf"))}
    except Exception:
        return {}


def main():
    command, options = parse(sys.argv)
    handlers = {
        ("produce", "confluent-kafka"): confluent_produce,
        ("consume", "confluent-kafka"): confluent_consume,
        ("produce", "kafka-python"): kafka_python_produce,
        ("consume", "kafka-python"): kafka_python_consume,
        ("group-type", "confluent-kafka"): confluent_group_type,
    }
    handler = handlers.get((command, options["client"]))
    if handler is None:
        fail(f"{command} is not implemented for {options['client']}")
    result = handler(options)
    emit(result)
    done = command == "group-type" or result.get("produced", result.get("consumed", 0)) >= int(options["count"])
    sys.exit(0 if done and not result["errors"] else 1)


if __name__ == "__main__":
    main()
