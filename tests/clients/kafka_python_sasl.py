"""SASL to the gateway with kafka-python, a client implementation independent of librdkafka.

Usage: kafka_python_sasl.py BOOTSTRAP MECHANISM USER PASSWORD [TOPIC]
Creates TOPIC (default `py-sasl`; if missing), produces 20 records and reads them back; exits non-zero on failure. With a wrong password the
connection must fail: run with PASSWORD=wrong and expect the exit code 3.
"""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError

bootstrap, mechanism, user, password = sys.argv[1:5]
topic = sys.argv[5] if len(sys.argv) > 5 else "py-sasl"
sasl = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
            sasl_plain_username=user, sasl_plain_password=password)
try:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **sasl)
except KafkaError as e:
    print(f"REFUSED {type(e).__name__}")
    sys.exit(3)
try:
    admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
except TopicAlreadyExistsError:
    pass
admin.close()
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **sasl)
for i in range(20):
    producer.send(topic, value=f"sasl-{i}".encode(), partition=0).get(timeout=30)
producer.close()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10000, **sasl)
partition = TopicPartition(topic, 0)
consumer.assign([partition])
consumer.seek_to_beginning(partition)
values = []
for record in consumer:
    values.append(record.value.decode())
    if len(values) == 20:
        break
consumer.close()
assert values == [f"sasl-{i}" for i in range(20)], values
print(f"OK kafka-python {mechanism} as {user}")
