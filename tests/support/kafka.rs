//! A real Kafka-protocol broker (tansu, started by scripts/kafka-broker.sh), and what the tests do
//! with it as producers and consumers would.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// `TEST_KAFKA_BROKERS`, else the address scripts/kafka-broker.sh uses.
pub fn brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

/// Fails the test (never skips) when no broker answers.
pub fn require() -> String {
    let brokers = brokers();
    if std::net::TcpStream::connect(&brokers).is_err() {
        panic!(
            "no Kafka-protocol broker at {brokers}. Start one with `scripts/kafka-broker.sh` (it installs and runs \
             tansu with SQLite storage), or set TEST_KAFKA_BROKERS."
        );
    }
    brokers
}

fn config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("message.timeout.ms", "10000").set("socket.timeout.ms", "10000");
    config
}

/// Creates `topic` with `partitions` (tansu creates no topic on its own).
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &options).await;
    for result in results.expect("create topics") {
        result.unwrap_or_else(|(name, e)| panic!("create topic {name}: {e}"));
    }
}

/// Produces `counts[p]` messages to each partition `p` of `topic`, in ordinary batches.
pub fn produce(brokers: &str, topic: &str, counts: &[u32]) {
    let producer: BaseProducer = config(brokers).set("linger.ms", "5").create().expect("producer");
    for (partition, count) in counts.iter().enumerate() {
        for i in 0..*count {
            let payload = format!("message {i}");
            let record = BaseRecord::<(), _>::to(topic).partition(partition as i32).payload(&payload);
            producer.send(record).unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(20)).expect("flush");
}

/// Commits offsets for `group` as its consumers would: (topic, partition, offset).
pub fn commit(brokers: &str, group: &str, offsets: &[(&str, i32, i64)]) {
    let consumer: BaseConsumer =
        config(brokers).set("group.id", group).set("enable.auto.commit", "false").create().expect("consumer");
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset)).expect("offset");
    }
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}
