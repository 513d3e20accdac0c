"""SNI routing with kafka-python (an implementation independent of librdkafka).

Usage: kafka_python_sni.py BOOTSTRAP CA_FILE DOMAIN [TOPIC]
Every host name ending in DOMAIN resolves to 127.0.0.1 (no DNS in tests), so the only thing telling the
gateway's single TLS port which broker a connection wants is the TLS server name (SNI) kafka-python sends.
Produces 10 records to each of partitions 0..2 of TOPIC (default `spread`; each led by a different broker),
reads them back, and prints the brokers the cluster advertises.
"""
import json
import logging
import os
import socket
import sys

# KAFKA_PYTHON_DEBUG=1 in the test's environment logs every request and response (kafka-python debug).
if os.environ.get("KAFKA_PYTHON_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")

bootstrap, cafile, domain = sys.argv[1], sys.argv[2], sys.argv[3]
topic = sys.argv[4] if len(sys.argv) > 4 else "spread"
_resolve = socket.getaddrinfo


def resolve(host, *args, **kwargs):
    if isinstance(host, str) and (host == domain or host.endswith("-" + domain) or host.endswith("." + domain)):
        host = "127.0.0.1"
    return _resolve(host, *args, **kwargs)


socket.getaddrinfo = resolve

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

tls = dict(security_protocol="SSL", ssl_cafile=cafile, ssl_check_hostname=True)

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **tls)
futures = [producer.send(topic, value=f"{p}-{i}".encode(), partition=p) for p in range(3) for i in range(10)]
for f in futures:
    f.get(timeout=30)
producer.close()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10000, **tls)
assert topic in consumer.topics()
brokers = sorted((b.node_id, b.host, b.port) for b in consumer._client.cluster.brokers())  # 3.x: node_id
partitions = [TopicPartition(topic, p) for p in range(3)]
consumer.assign(partitions)
consumer.seek_to_beginning(*partitions)
seen = {p: [] for p in range(3)}
for record in consumer:
    seen[record.partition].append(record.value.decode())
    if sum(len(v) for v in seen.values()) == 30:
        break
consumer.close()
for p in range(3):
    assert seen[p] == [f"{p}-{i}" for i in range(10)], (p, seen[p])
print("OK " + json.dumps({"brokers": brokers}))
