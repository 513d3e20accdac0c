"""A tenant of a virtual cluster, with kafka-python (a client implementation independent of librdkafka).

Usage: kafka_python_tenant.py BOOTSTRAP USER TOKEN
Logs in with SASL PLAIN (the token as password), creates `users`, produces 10 records, consumes them in group
`py-readers` with a commit, and checks that the topic list and the group list show the tenant's names only, without
their prefix. Exits non-zero on failure.
"""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

bootstrap, user, token = sys.argv[1:4]
sasl = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
            sasl_plain_username=user, sasl_plain_password=token)
admin = KafkaAdminClient(bootstrap_servers=bootstrap, **sasl)
try:
    admin.create_topics({"users": {"num_partitions": 1, "replication_factor": 1}})
except TopicAlreadyExistsError:
    pass
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **sasl)
for i in range(10):
    producer.send("users", value=f"py-{i}".encode(), partition=0).get(timeout=30)
producer.close()

consumer = KafkaConsumer("users", bootstrap_servers=bootstrap, group_id="py-readers",
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         consumer_timeout_ms=20000, **sasl)
values = []
for record in consumer:
    assert record.topic == "users", record.topic
    values.append(record.value.decode())
    if len(values) == 10:
        break
assert values == [f"py-{i}" for i in range(10)], values
consumer.commit()
committed = consumer.committed(TopicPartition("users", 0))
assert committed == 10, committed
topics = consumer.topics()
consumer.close()
assert "users" in topics, topics
assert not any(t.startswith("teamPy") for t in topics), topics
# kafka-python 3.x: list_groups() returns dicts (2.x: list_consumer_groups() returned tuples).
groups = [g["group_id"] for g in admin.list_groups()]
assert "py-readers" in groups, groups
assert not any(g.startswith("teamPy") for g in groups), groups
admin.close()
print(f"OK kafka-python tenant {user}: topics {sorted(topics)}, groups {sorted(groups)}")
