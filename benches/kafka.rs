//! Poll latency for one group over 1 topic × {10, 1,000, 10,000} partitions on a local tansu,
//! beside a naive loop of one watermark query per partition; with the requests each poll sends
//! and the time the broker spent on them, counted by a small proxy in front of the broker.
//!
//! `cargo bench --bench kafka` (needs the `tansu` binary: scripts/kafka-broker.sh installs it)

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::{Settings, Source, SourceSpec};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// What the proxy saw: requests by API key, and the broker's time answering them.
#[derive(Default)]
struct Traffic {
    requests: BTreeMap<i16, u64>,
    broker_time: Duration,
}

fn api_name(key: i16) -> String {
    match key {
        2 => "ListOffsets".into(),
        3 => "Metadata".into(),
        9 => "OffsetFetch".into(),
        10 => "FindCoordinator".into(),
        18 => "ApiVersions".into(),
        other => format!("api {other}"),
    }
}

/// Forwards a port to the broker, counting request frames (4-byte size, then the API key) and
/// timing each until its response (Kafka answers in order on a connection).
fn proxy(listen: TcpListener, broker: String, traffic: Arc<Mutex<Traffic>>) {
    for client in listen.incoming().flatten() {
        let (broker, traffic) = (broker.clone(), traffic.clone());
        std::thread::spawn(move || {
            let Ok(upstream) = TcpStream::connect(&broker) else { return };
            // The proxy must not add delays of its own.
            let _ = (upstream.set_nodelay(true), client.set_nodelay(true));
            let sent: Arc<Mutex<std::collections::VecDeque<Instant>>> = Arc::default();
            let (mut from_client, mut to_broker) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut from_broker, mut to_client) = (upstream, client);
            let (sent2, traffic2) = (sent.clone(), traffic.clone());
            std::thread::spawn(move || {
                while let Some(frame) = read_frame(&mut from_broker) {
                    if let Some(at) = sent2.lock().unwrap().pop_front() {
                        traffic2.lock().unwrap().broker_time += at.elapsed();
                    }
                    if to_client.write_all(&frame).is_err() {
                        return;
                    }
                }
            });
            while let Some(frame) = read_frame(&mut from_client) {
                let key = i16::from_be_bytes([frame[4], frame[5]]);
                *traffic.lock().unwrap().requests.entry(key).or_default() += 1;
                sent.lock().unwrap().push_back(Instant::now());
                if to_broker.write_all(&frame).is_err() {
                    return;
                }
            }
        });
    }
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut frame = vec![0u8; 4 + u32::from_be_bytes(size) as usize];
    frame[..4].copy_from_slice(&size);
    stream.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

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
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let listener = TcpListener::bind(("127.0.0.1", proxy_port)).unwrap();
    let (upstream, counted) = (format!("127.0.0.1:{broker_port}"), traffic.clone());
    std::thread::spawn(move || proxy(listener, upstream, counted));
    let brokers = format!("127.0.0.1:{proxy_port}");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    for partitions in [10, 1_000, 10_000] {
        let (topic, group) = (format!("bench-{partitions}"), format!("bench-group-{partitions}"));
        let setup = Instant::now();
        prepare(&runtime, &brokers, &topic, &group, partitions);
        println!("\n1 topic × {partitions} partitions (set up in {:.1} s)", setup.elapsed().as_secs_f64());
        let text = format!("brokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\n");
        let settings = kafka_settings(&text);
        let spec = SourceSpec {
            url: None::<SecretUrl>,
            timeout: Duration::from_secs(60),
            settings: Settings::Kafka(settings),
        };
        let source = runtime.block_on(async { Source::new(&spec) }).expect("source");
        let expected = f64::from(partitions) * 2.0;
        assert_eq!(runtime.block_on(source.poll()).expect("warm-up poll").value, expected);

        let runs = if partitions >= 10_000 { 5 } else { 15 };
        *traffic.lock().unwrap() = Traffic::default();
        let ours =
            common::measure("our poll: 1 OffsetFetch + ListOffsets per leader", partitions as u64, 0, runs, || {
                let reading = runtime.block_on(source.poll()).expect("poll");
                assert_eq!(reading.value, expected);
            });
        let ours_traffic = std::mem::take(&mut *traffic.lock().unwrap());
        // Two round trips per partition: at 10,000 partitions one naive poll would take minutes,
        // so it runs over the first 1,000 and is scaled up (it is linear by construction).
        let (naive_runs, naive_partitions) = if partitions >= 10_000 { (1, 1_000) } else { (3, partitions) };
        let scale = u32::try_from(partitions / naive_partitions).unwrap_or(1);
        let label = "naive: fetch_watermarks per partition (baseline)";
        let mut naive =
            common::measure(label, partitions as u64, 0, naive_runs, || naive_poll(&brokers, &topic, naive_partitions));
        if scale > 1 {
            naive.name = format!("{label} ×{scale} from 1,000");
            naive.times.iter_mut().for_each(|t| *t *= scale);
        }
        let naive_traffic = std::mem::take(&mut *traffic.lock().unwrap());
        let median = ours.median();
        common::report(&format!("kafka: 1 topic × {partitions} partitions, local tansu (SQLite)"), &[naive, ours]);
        report_traffic("ours, per poll", &ours_traffic, runs, median);
        report_traffic(
            &format!("naive, per poll over {naive_partitions} partitions"),
            &naive_traffic,
            naive_runs,
            Duration::ZERO,
        );
    }
    let _ = broker.kill();
    let _ = broker.wait();
}

fn report_traffic(name: &str, traffic: &Traffic, polls: usize, median: Duration) {
    let per_poll: Vec<String> =
        traffic.requests.iter().map(|(key, n)| format!("{} {:.1}", api_name(*key), *n as f64 / polls as f64)).collect();
    let broker = traffic.broker_time / u32::try_from(polls).unwrap_or(1);
    print!("  requests {name}: {}; broker time {}", per_poll.join(", "), common::fmt(broker));
    if !median.is_zero() {
        print!(
            " of a {} median poll ({:.0}% the broker's)",
            common::fmt(median),
            100.0 * broker.as_secs_f64() / median.as_secs_f64()
        );
    }
    println!();
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

/// What a per-partition scaler does: two ListOffsets round trips for every partition.
fn naive_poll(brokers: &str, topic: &str, partitions: i32) {
    // Nagle off, as ours (and as Go clients such as KEDA's have it): a fair per-request cost.
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("socket.nagle.disable", "true").create().unwrap();
    let mut total = 0;
    for partition in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(30)).unwrap();
        total += high;
    }
    assert_eq!(total, i64::from(partitions) * 3);
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
