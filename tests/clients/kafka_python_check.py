"""End-to-end check with kafka-python, a client implementation independent of librdkafka.

Usage: kafka_python_check.py BOOTSTRAP EXPECTED_PORT EXPECTED_CLUSTER_ID [TOPIC [GROUP]]
Creates a topic (default `py-orders`), produces 500 records with acks=all, consumes them back in order with a consumer group,
commits, and checks that every address the cluster describes is the gateway's. Exits non-zero on failure.
"""
import logging
import os
import sys

# KAFKA_PYTHON_DEBUG=1 in the test's environment logs every request and response (kafka-python debug).
if os.environ.get("KAFKA_PYTHON_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

bootstrap, expected_port, expected_cluster_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
host = bootstrap.split(":")[0]
TOPIC = sys.argv[4] if len(sys.argv) > 4 else "py-orders"
GROUP = sys.argv[5] if len(sys.argv) > 5 else "py-group"
COUNT = 500

admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-check")
# kafka-python 3.x: topics as a dict of options (the NewTopic list is deprecated). Kafka answers CreateTopics
# once the controller has the topic; a broker's metadata may list it a moment later, so wait for that.
admin.create_topics({TOPIC: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
assert TOPIC in admin.list_topics(), admin.list_topics()

cluster = admin.describe_cluster()
assert cluster["cluster_id"] == expected_cluster_id, cluster
for broker in cluster["brokers"]:
    assert (broker["host"], broker["port"]) == (host, expected_port), cluster
    assert broker["broker_id"] == 0, cluster  # 3.x names it broker_id (2.x: node_id)

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
futures = [producer.send(TOPIC, key=b"k", value=str(i).encode()) for i in range(COUNT)]
offsets = [f.get(timeout=30).offset for f in futures]
assert offsets == list(range(COUNT)), offsets[:10]
producer.close()

consumer = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=GROUP, auto_offset_reset="earliest",
                         enable_auto_commit=False, consumer_timeout_ms=15000)
values = []
for message in consumer:
    values.append(int(message.value))
    if len(values) == COUNT:
        break
assert values == list(range(COUNT)), (len(values), values[:10])
consumer.commit()
committed = consumer.committed(TopicPartition(TOPIC, 0))
assert committed == COUNT, committed
consumer.close()
print(f"OK kafka-python produced and consumed {COUNT} records; cluster {cluster['cluster_id']} "
      f"brokers {[(b['host'], b['port']) for b in cluster['brokers']]}")
