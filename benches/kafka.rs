//! Poll latency of one consumer group over 1 topic × {10, 1,000, 10,000} partitions on a local
//! tansu, beside its peers in the same run: KEDA's requests (the baseline, benches/kafka/keda.rs),
//! a per-partition loop, and kafka-python (benches/peers/kafka_lag.py); read_uncommitted and
//! read_committed apart. Every client is connected and warmed up before its timed polls. A proxy
//! in front of the broker (benches/kafka/proxy.rs) counts each poll's requests and the broker's
//! time answering them.
//!
//! `cargo bench --bench kafka` (needs the `tansu` binary: scripts/kafka-broker.sh installs it;
//! the kafka-python peer needs python3, and installs kafka-python from PyPI when it is missing)

mod common;
#[path = "kafka/keda.rs"]
mod keda;
mod peers;
#[path = "kafka/proxy.rs"]
mod proxy;

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Sample;
use proxy::Traffic;
use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::{Settings, Source, SourceSpec};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const KAFKA_PYTHON: peers::Package = peers::Package { module: "kafka", requirement: "kafka-python==3.0.12" };

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn main() {
    let tansu = which_tansu();
    let dir = tempfile::tempdir().unwrap();
    let (broker_port, proxy_port) = (free_port(), free_port());
    let mut broker = std::process::Command::new(&tansu)
        .current_dir(dir.path())
        .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{broker_port}")])
        .args([
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{proxy_port}"),
            "--storage-engine",
            "sqlite://bench.db",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tansu");
    std::thread::sleep(Duration::from_millis(500));
    let listener = TcpListener::bind(("127.0.0.1", proxy_port)).unwrap();
    let traffic = proxy::start(listener, format!("127.0.0.1:{broker_port}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let bench = Bench { runtime, brokers: format!("127.0.0.1:{proxy_port}"), traffic };
    for partitions in [10, 1_000, 10_000] {
        bench.run(partitions);
    }
    let _ = broker.kill();
    let _ = broker.wait();
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    /// The proxy's address: the bootstrap address of every client.
    brokers: String,
    traffic: std::sync::Arc<Mutex<Traffic>>,
}

impl Bench {
    fn run(&self, partitions: i32) {
        let (topic, group) = (format!("bench-{partitions}"), format!("bench-group-{partitions}"));
        let setup = Instant::now();
        prepare(&self.runtime, &self.brokers, &topic, &group, partitions);
        println!("\n1 topic × {partitions} partitions (set up in {:.1} s)", setup.elapsed().as_secs_f64());
        let expected = i64::from(partitions) * 2;
        let (runs, ops) = (if partitions >= 10_000 { 5 } else { 15 }, partitions as u64);
        let mut rows = Vec::new();

        let mut keda = keda::KedaPoll::connect(&self.brokers, &group, &topic);
        assert_eq!(keda.poll(), expected, "warm-up");
        rows.push(self.timed(|| {
            common::measure("KEDA's requests, read_uncommitted (baseline)", ops, 0, runs, || {
                assert_eq!(keda.poll(), expected)
            })
        }));

        let consumer = per_partition_client(&self.brokers, &group, &topic);
        // Two round trips per partition: one timed run at 10,000 partitions takes long enough.
        let loop_runs = match partitions {
            ..=10 => 15,
            11..=1_000 => 3,
            _ => 1,
        };
        rows.push(self.timed(|| {
            common::measure("per-partition loop, read_uncommitted", ops, 0, loop_runs, || {
                assert_eq!(per_partition_poll(&consumer, &topic, partitions), expected)
            })
        }));

        for isolation in ["read_uncommitted", "read_committed"] {
            let job = serde_json::json!({
                "brokers": self.brokers, "group": group, "topic": topic, "isolation": isolation,
                "expected": expected, "warmup": 1, "runs": runs,
            });
            let name = format!("kafka-python, {isolation}");
            // The proxy counts from the peer's `ready` on: its timed polls only.
            let found = peers::run(&name, ops, "kafka_lag.py", &KAFKA_PYTHON, &job, || {
                proxy::take(&self.traffic);
            });
            let counted = proxy::take(&self.traffic);
            match found {
                Ok(sample) => rows.push((sample, counted)),
                Err(reason) => println!("  skipped the kafka-python peer: {reason}"),
            }

            let source = self.source(&group, &topic, isolation);
            assert_eq!(self.poll(&source), expected, "warm-up");
            rows.push(self.timed(|| {
                common::measure(&format!("ours, {isolation}"), ops, 0, runs, || {
                    assert_eq!(self.poll(&source), expected)
                })
            }));
        }
        report(partitions, rows);
    }

    /// Measures with the proxy counting only the timed polls.
    fn timed(&self, measure: impl FnOnce() -> Sample) -> (Sample, Traffic) {
        proxy::take(&self.traffic);
        let sample = measure();
        (sample, proxy::take(&self.traffic))
    }

    fn source(&self, group: &str, topic: &str, isolation: &str) -> Source {
        let text = format!(
            "brokers = \"{}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\nisolation = \"{isolation}\"\n",
            self.brokers
        );
        let spec = SourceSpec {
            url: None::<SecretUrl>,
            timeout: Duration::from_secs(120),
            settings: Settings::Kafka(kafka_settings(&text)),
        };
        self.runtime.block_on(async { Source::new(&spec) }).expect("source")
    }

    fn poll(&self, source: &Source) -> i64 {
        self.runtime.block_on(source.poll()).expect("poll").value as i64
    }
}

/// The timings side by side, then each client's requests per poll.
fn report(partitions: i32, rows: Vec<(Sample, Traffic)>) {
    let (samples, traffic): (Vec<Sample>, Vec<Traffic>) = rows.into_iter().unzip();
    common::report(&format!("kafka: 1 topic × {partitions} partitions, local tansu (SQLite)"), &samples);
    println!("  requests per poll (the broker's time answering them, per poll):");
    for (sample, traffic) in samples.iter().zip(&traffic) {
        println!("    {:<46} {}", sample.name, traffic.per_poll(sample.times.len()));
    }
}

/// Creates the topic, produces 3 messages to each partition, commits offset 1 everywhere: lag 2
/// per partition.
fn prepare(runtime: &tokio::runtime::Runtime, brokers: &str, topic: &str, group: &str, partitions: i32) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("socket.timeout.ms", "60000").set("message.timeout.ms", "120000");
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    runtime.block_on(async {
        for result in admin
            .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &options)
            .await
            .unwrap()
        {
            result.unwrap();
        }
    });
    let producer: BaseProducer =
        config.clone().set("linger.ms", "20").set("queue.buffering.max.messages", "1000000").create().unwrap();
    for partition in 0..partitions {
        for i in 0..3 {
            let payload = format!("{i}");
            producer.send(BaseRecord::<(), _>::to(topic).partition(partition).payload(&payload)).unwrap();
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(300)).unwrap();
    let consumer: BaseConsumer = config.clone().set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Offset(1)).unwrap();
    }
    consumer.commit(&list, CommitMode::Sync).unwrap();
}

/// A per-partition loop's client (librdkafka, Nagle off as ours), connected before the timed
/// polls: its first poll of one partition finds the broker and the group's coordinator.
fn per_partition_client(brokers: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .set("socket.nagle.disable", "true")
        .create()
        .unwrap();
    let mut one = TopicPartitionList::new();
    one.add_partition(topic, 0);
    consumer.committed_offsets(one, Duration::from_secs(30)).unwrap();
    consumer.fetch_watermarks(topic, 0, Duration::from_secs(30)).unwrap();
    consumer
}

/// A lag loop that asks partition by partition: the group's commits in one OffsetFetch, then
/// `fetch_watermarks` for each partition (two ListOffsets round trips each, low and high).
fn per_partition_poll(consumer: &BaseConsumer, topic: &str, partitions: i32) -> i64 {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(120)).unwrap();
    let mut lag = 0;
    for element in committed.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, element.partition(), Duration::from_secs(30)).unwrap();
        if let Offset::Offset(committed) = element.offset() {
            lag += (high - committed).max(0);
        }
    }
    lag
}

fn kafka_settings(text: &str) -> queue_autoscaler::source::kafka::KafkaSettings {
    let config = format!(
        "[sources.k]\nkind = \"kafka\"\n{text}\n[[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 1\ntriggers = [{{ source = \"k\", per_replica = 1 }}]\n"
    );
    let config = queue_autoscaler::config::Config::parse(&config, Vec::new()).unwrap();
    match &config.sources["k"].settings {
        Settings::Kafka(settings) => settings.clone(),
        _ => unreachable!(),
    }
}

fn which_tansu() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    for candidate in ["tansu".to_owned(), format!("{home}/.cargo/bin/tansu")] {
        if std::process::Command::new(&candidate).arg("--help").output().is_ok() {
            return candidate;
        }
    }
    panic!("tansu is needed: scripts/kafka-broker.sh installs it (cargo install tansu --locked --features libsql)");
}
