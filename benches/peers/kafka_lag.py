"""kafka-python's lag poll, for benches/kafka.rs.

A script using kafka-python's admin client measures a group's lag with two calls, one after
the other: list_group_offsets (one OffsetFetch to the coordinator) and list_partition_offsets
for the latest offsets (one ListOffsets per partition leader), with the isolation level asked
for; lag = end - committed. The client connects and reads the topic's partitions once, before
the timed polls. The handshake with the bench is in peer.py.
"""

import kafka
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec

import peer


def main():
    job = peer.read_job()
    group, topic = job["group"], job["topic"]
    admin = KafkaAdminClient(
        bootstrap_servers=job["brokers"], client_id="bench-kafka-python", request_timeout_ms=300_000
    )
    (described,) = admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition_index"]) for p in described["partitions"]]
    latest = {tp: OffsetSpec.LATEST for tp in partitions}

    def poll():
        committed = admin.list_group_offsets({group: partitions})[group]
        ends = admin.list_partition_offsets(latest, isolation_level=job["isolation"])
        return sum(max(ends[tp].offset - committed[tp].offset, 0) for tp in partitions if committed[tp].offset >= 0)

    peer.serve(job, poll, f"kafka-python {kafka.__version__}")
    admin.close()


if __name__ == "__main__":
    main()
