"""SASL to the gateway with kafka-python, a client implementation independent of librdkafka.

Usage: kafka_python_sasl.py BOOTSTRAP MECHANISM USER PASSWORD [TOPIC]
Creates TOPIC (default `py-sasl`; if missing), produces 20 records and reads them back; exits non-zero on
failure. With a wrong password the login must be refused: exit code 3 when kafka-python saw the gateway refuse
the credentials (SaslAuthenticationFailedError), 4 when it failed for any other reason.
"""
import logging
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, SaslAuthenticationFailedError, TopicAlreadyExistsError


class AuthFailures(logging.Handler):
    """kafka-python 3.x retries a refused login until its bootstrap timeout and then raises KafkaTimeoutError;
    the refusal itself is only in its log, as the exception of a failed connection."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.seen = []

    def emit(self, record):
        self.seen += [a for a in (record.args or ()) if isinstance(a, SaslAuthenticationFailedError)]


auth_failures = AuthFailures()
logging.getLogger("kafka").addHandler(auth_failures)
logging.getLogger("kafka").setLevel(logging.WARNING)
logging.getLogger("kafka").propagate = False

bootstrap, mechanism, user, password = sys.argv[1:5]
topic = sys.argv[5] if len(sys.argv) > 5 else "py-sasl"
sasl = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
            sasl_plain_username=user, sasl_plain_password=password)
try:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=30000, **sasl)
except KafkaError as e:
    if auth_failures.seen:
        print(f"REFUSED {type(auth_failures.seen[0]).__name__}: {auth_failures.seen[0]}")
        sys.exit(3)
    print(f"FAILED {type(e).__name__}: {e}")
    sys.exit(4)
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
