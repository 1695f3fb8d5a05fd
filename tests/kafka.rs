//! The Kafka source against a real Kafka-protocol broker (tansu), and librdkafka's mock cluster
//! for the faults a real broker cannot be made to produce on demand.

mod support;

use std::time::{Duration, Instant};

use queue_autoscaler::source::kafka::KafkaSettings;
use queue_autoscaler::source::{Reading, Settings, Source, SourceError, SourceSpec};
use support::kafka::{commit, create_topic, produce, require};
use support::unique;

fn settings(brokers: &str, group: &str, topics: &[&str]) -> KafkaSettings {
    let text = format!(
        "brokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [{}]\n",
        topics.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
    );
    toml_settings(&text)
}

/// Settings as the config file would give them (every default applied by the same serde code).
fn toml_settings(text: &str) -> KafkaSettings {
    let config = format!(
        "[sources.k]\nkind = \"kafka\"\n{text}\n[[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 1\ntriggers = [{{ source = \"k\", per_replica = 1 }}]\n"
    );
    let config = queue_autoscaler::config::Config::parse(&config, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    match &config.sources["k"].settings {
        Settings::Kafka(settings) => settings.clone(),
        _ => unreachable!("a kafka source"),
    }
}

fn source(settings: KafkaSettings, timeout: Duration) -> Source {
    let spec = SourceSpec { url: None, timeout, settings: Settings::Kafka(settings) };
    Source::new(&spec).expect("kafka source")
}

async fn poll(settings: KafkaSettings) -> Reading {
    source(settings, Duration::from_secs(10)).poll().await.expect("poll")
}

fn lags(reading: &Reading) -> Vec<(String, i32, i64)> {
    reading.partitions.iter().map(|p| (p.topic.clone(), p.partition, p.lag)).collect()
}

/// Two topics: `a` with 3 partitions (10, 20, 30 messages), `b` with 2 (5, 0); the group has
/// committed a/0 at 4, a/1 at 20, b/0 at 1, and nothing for a/2 and b/1.
async fn scenario(name: &str) -> (String, String, String, String) {
    let brokers = require();
    let (a, b, group) = (unique(&format!("{name}-a")), unique(&format!("{name}-b")), unique(&format!("{name}-group")));
    create_topic(&brokers, &a, 3).await;
    create_topic(&brokers, &b, 2).await;
    let (brokers2, a2, b2) = (brokers.clone(), a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        produce(&brokers2, &a2, &[10, 20, 30]);
        produce(&brokers2, &b2, &[5, 0]);
    })
    .await
    .unwrap();
    let (brokers2, a2, b2, group2) = (brokers.clone(), a.clone(), b.clone(), group.clone());
    tokio::task::spawn_blocking(move || commit(&brokers2, &group2, &[(&a2, 0, 4), (&a2, 1, 20), (&b2, 0, 1)]))
        .await
        .unwrap();
    (brokers, a, b, group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_lag_per_partition_for_both_reset_policies() {
    let (brokers, a, b, group) = scenario("lag").await;
    let latest = poll(settings(&brokers, &group, &[&a, &b])).await;
    let expected = vec![(a.clone(), 0, 6), (a.clone(), 1, 0), (a.clone(), 2, 1), (b.clone(), 0, 4), (b.clone(), 1, 1)];
    assert_eq!(lags(&latest), expected, "latest: no commit counts 1 (one consumer to start the group), as KEDA");
    assert_eq!(latest.value, 12.0);
    let committed: Vec<Option<i64>> = latest.partitions.iter().map(|p| p.committed).collect();
    assert_eq!(committed, vec![Some(4), Some(20), None, Some(1), None]);
    let ends: Vec<i64> = latest.partitions.iter().map(|p| p.end).collect();
    assert_eq!(ends, vec![10, 20, 30, 5, 0], "end offsets of ordinary batches");

    let mut earliest = settings(&brokers, &group, &[&a, &b]);
    earliest.offset_reset = "earliest".into();
    let reading = poll(earliest).await;
    assert_eq!(lags(&reading)[2], (a.clone(), 2, 30), "earliest: from the log start");
    assert_eq!(reading.value, 40.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_topics_every_topic_the_group_committed_is_measured() {
    let (brokers, a, b, group) = scenario("alltopics").await;
    let reading = poll(settings(&brokers, &group, &[])).await;
    let mut topics: Vec<String> = reading.partitions.iter().map(|p| p.topic.clone()).collect();
    topics.dedup();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(topics, expected);
    assert_eq!(reading.partitions.len(), 5, "every partition of those topics, committed or not");
    assert_eq!(reading.value, 12.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_is_the_partitions_or_those_with_lag() {
    let (brokers, a, b, group) = scenario("cap").await;
    assert_eq!(poll(settings(&brokers, &group, &[&a, &b])).await.cap, Some(5));
    let mut with_lag = settings(&brokers, &group, &[&a, &b]);
    with_lag.limit_to_partitions_with_lag = true;
    assert_eq!(poll(with_lag).await.cap, Some(4), "a/0 and b/0, and a/2 and b/1 (no commit: lag 1)");
    let mut uncapped = settings(&brokers, &group, &[&a, &b]);
    uncapped.cap_at_partitions = false;
    assert_eq!(poll(uncapped).await.cap, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_stuck_while_lagging_is_left_out_after_n_polls() {
    let (brokers, a, _, group) = scenario("persistent").await;
    let mut stuck = settings(&brokers, &group, &[&a]);
    stuck.exclude_persistent_lag = true;
    stuck.persistent_lag_polls = 2;
    let source = source(stuck, Duration::from_secs(10));
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(source.poll().await.expect("poll").value);
    }
    // a/2 has no commit (lag 1): nothing there has stopped moving, so it is never left out.
    assert_eq!(seen, vec![7.0, 7.0, 1.0], "a/0 lags 6 with a commit that never moves");
    let (brokers2, a2, group2) = (brokers.clone(), a.clone(), group.clone());
    tokio::task::spawn_blocking(move || commit(&brokers2, &group2, &[(&a2, 0, 5)])).await.unwrap();
    assert_eq!(source.poll().await.expect("poll").value, 6.0, "the commit moved: counted again");
}

#[tokio::test]
async fn config_knobs_parse_with_keda_like_defaults() {
    let settings = toml_settings(
        "brokers = \"b:9092\"\ngroup = \"g\"\n[sources.k.librdkafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.password\" = \"hunter2\"\n\"socket.timeout.ms\" = 5000\n",
    );
    assert_eq!((settings.offset_reset.as_str(), settings.isolation.as_str()), ("latest", "read_committed"));
    assert!(settings.cap_at_partitions && !settings.limit_to_partitions_with_lag && !settings.exclude_persistent_lag);
    assert!(settings.topics.is_empty());
    assert!(settings.partition_limitation.is_empty());
    assert!(!settings.ensure_even_distribution && !settings.scale_to_zero_on_invalid_offset);
    assert_eq!(settings.client_properties()["socket.timeout.ms"], "5000");
    assert!(!format!("{settings:?}").contains("hunter2"), "secrets never in Debug output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_limitation_counts_only_the_partitions_named() {
    let (brokers, a, b, group) = scenario("limitation").await;
    let text = format!(
        "brokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [\"{a}\", \"{b}\"]\npartition_limitation = [0, \"2-2\"]\n"
    );
    let reading = poll(toml_settings(&text)).await;
    let expected = vec![(a.clone(), 0, 6), (a.clone(), 2, 1), (b.clone(), 0, 4)];
    assert_eq!(lags(&reading), expected, "partitions 0 and 2 of each topic (b has no 2)");
    assert_eq!((reading.value, reading.cap), (11.0, Some(3)), "the cap counts the partitions that count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_to_zero_on_invalid_offset_counts_uncommitted_partitions_as_zero() {
    let (brokers, a, b, group) = scenario("invalid-offset").await;
    for reset in ["latest", "earliest"] {
        let text = format!(
            "brokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [\"{a}\", \"{b}\"]\noffset_reset = \"{reset}\"\n\
             scale_to_zero_on_invalid_offset = true\n"
        );
        let reading = poll(toml_settings(&text)).await;
        assert_eq!(reading.value, 10.0, "{reset}: a/2 (30 retained) and b/1 count 0");
        assert_eq!(lags(&reading)[2], (a.clone(), 2, 0), "{reset}");
    }
}

#[test]
fn ensure_even_distribution_rounds_the_consumers_up_to_a_factor_of_the_partitions() {
    let brokers = require();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (topic, group) = (unique("even-orders"), unique("even-group"));
    runtime.block_on(create_topic(&brokers, &topic, 12));
    // 45 messages over 12 partitions, every partition committed at 0: lag 45.
    produce(&brokers, &topic, &[4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3]);
    let commits: Vec<(&str, i32, i64)> = (0..12).map(|p| (topic.as_str(), p, 0)).collect();
    commit(&brokers, &group, &commits);
    let desired = |even: bool| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let config = format!(
            "[sources.lag]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\n\
             ensure_even_distribution = {even}\n\n[[targets]]\nname = \"c\"\ndeployment = \"c\"\nmin_replicas = 1\n\
             max_replicas = 50\ntriggers = [{{ source = \"lag\", per_replica = 10 }}]\n\
             [targets.scale_up]\npolicies = [{{ type = \"pods\", value = 50, period = \"15s\" }}]\n"
        );
        std::fs::write(&path, config).unwrap();
        let args = ["once", "--config", path.to_str().unwrap(), "--dry-run", "--output", "json"];
        let out = support::daemon::run(&args, None, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json[0]["triggers"][0]["value"], 45.0);
        json[0]["desired"].as_u64().unwrap()
    };
    assert_eq!(desired(false), 5, "ceil(45 / 10)");
    assert_eq!(desired(true), 6, "5 → 6, the next factor of 12: two partitions per consumer");
}

#[test]
fn kafka_knobs_that_cannot_work_are_config_errors() {
    let config = |lines: &str| {
        format!(
            "[sources.k]\nkind = \"kafka\"\nbrokers = \"b:9092\"\ngroup = \"g\"\n{lines}\n[[targets]]\nname = \"t\"\n\
             deployment = \"d\"\nmax_replicas = 1\ntriggers = [{{ source = \"k\", per_replica = 1 }}]\n"
        )
    };
    let error =
        |lines: &str| queue_autoscaler::config::Config::parse(&config(lines), Vec::new()).expect_err(lines).to_string();
    let text = error("partition_limitation = [1]");
    assert!(text.contains("sources.k.partition_limitation") && text.contains("needs `topics`"), "{text}");
    let text = error("topics = [\"o\"]\npartition_limitation = [\"5-2\", -1]");
    assert!(text.contains("ends before it starts") && text.contains("-1 is not a partition id"), "{text}");
    let text = error("topics = [\"o\"]\nensure_even_distribution = true\nlimit_to_partitions_with_lag = true");
    assert!(text.contains("sources.k.ensure_even_distribution"), "{text}");
}

// ---- faults, on librdkafka's mock cluster -------------------------------------------------

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

fn mock_settings(mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>, topic: &str) -> KafkaSettings {
    settings(&mock.bootstrap_servers(), "mock-group", &[topic])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_coordinator_is_a_failed_poll() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("orders", 2, 1).expect("topic");
    mock.request_errors(RDKafkaApiKey::OffsetFetch, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 20]);
    let error =
        source(mock_settings(&mock, "orders"), Duration::from_secs(3)).poll().await.expect_err("no coordinator");
    assert!(matches!(error, SourceError::Query(_) | SourceError::Timeout(_)), "{error}");
    mock.clear_request_errors(RDKafkaApiKey::OffsetFetch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_is_a_bounded_failed_poll() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("orders", 2, 1).expect("topic");
    let source = source(mock_settings(&mock, "orders"), Duration::from_secs(2));
    assert_eq!(source.poll().await.expect("healthy").value, 2.0, "2 partitions without a commit");
    mock.broker_down(1).expect("down");
    let started = Instant::now();
    let error = source.poll().await.expect_err("broker down");
    assert!(started.elapsed() < Duration::from_secs(6), "bounded: {:?}", started.elapsed());
    assert!(matches!(error, SourceError::Connect(_) | SourceError::Query(_) | SourceError::Timeout(_)), "{error}");
    mock.broker_up(1).expect("up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_times_out_instead_of_hanging_the_loop() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("orders", 2, 1).expect("topic");
    mock.broker_round_trip_time(1, Duration::from_secs(10)).expect("rtt");
    let started = Instant::now();
    let error = source(mock_settings(&mock, "orders"), Duration::from_secs(1)).poll().await.expect_err("too slow");
    assert!(started.elapsed() < Duration::from_secs(4), "the poll returned after {:?}", started.elapsed());
    // librdkafka may give up on the connection first (a transport failure) or our timeout fires.
    assert!(matches!(error, SourceError::Timeout(_) | SourceError::Query(_) | SourceError::Connect(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_stops_at_the_last_stable_offset() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let brokers = require();
    let (topic, group) = (unique("isolation"), unique("isolation-group"));
    create_topic(&brokers, &topic, 1).await;
    let (brokers2, topic2) = (brokers.clone(), topic.clone());
    // 5 plain messages, then 3 in a transaction left open: committed readers stop at 5.
    let producer = tokio::task::spawn_blocking(move || {
        produce(&brokers2, &topic2, &[5]);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers2)
            .set("transactional.id", format!("{topic2}-tx"))
            .create()
            .expect("transactional producer");
        producer.init_transactions(Duration::from_secs(10)).expect("init transactions");
        producer.begin_transaction().expect("begin");
        for i in 0..3 {
            let payload = format!("pending {i}");
            producer.send(BaseRecord::<(), _>::to(&topic2).partition(0).payload(&payload)).expect("send");
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
        producer
    })
    .await
    .unwrap();
    let (brokers2, topic2, group2) = (brokers.clone(), topic.clone(), group.clone());
    tokio::task::spawn_blocking(move || commit(&brokers2, &group2, &[(&topic2, 0, 0)])).await.unwrap();
    let committed = poll(settings(&brokers, &group, &[&topic])).await;
    let mut uncommitted = settings(&brokers, &group, &[&topic]);
    uncommitted.isolation = "read_uncommitted".into();
    let uncommitted = poll(uncommitted).await;
    assert_eq!((committed.value, uncommitted.value), (5.0, 8.0), "LSO 5, high watermark 8");
    drop(producer);
}

// ---- end to end -------------------------------------------------------------------------------

use support::apiserver::ApiServer;
use support::daemon::{Daemon, cycles_pass, free_port, http_get, metric};
use support::eventually;
use support::toml::Toml;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_lag_scales_the_consumers_capped_at_the_partitions() {
    let brokers = require();
    let (topic, group) = (unique("e2e-orders"), unique("e2e-orders-group"));
    create_topic(&brokers, &topic, 3).await;
    let (brokers2, topic2, group2) = (brokers.clone(), topic.clone(), group.clone());
    tokio::task::spawn_blocking(move || {
        commit(&brokers2, &group2, &[(&topic2, 0, 0), (&topic2, 1, 0), (&topic2, 2, 0)])
    })
    .await
    .unwrap();
    let api = ApiServer::start().await;
    api.add_deployment("streams", "orders-consumer", 1);
    let port = free_port();
    let lag = format!("brokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\npartition_metrics = true");
    let config = Toml::daemon(port)
        .source("orders_lag", "kafka")
        .raw(&lag)
        .target("orders", "streams", "orders-consumer")
        .max_replicas(20)
        .per_replica("orders_lag", 10)
        .scale_up_pods(20)
        .render();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config, &["run"], Some(&api.kubeconfig(dir.path())), &[]);
    let (brokers2, topic2) = (brokers.clone(), topic.clone());
    tokio::task::spawn_blocking(move || produce(&brokers2, &topic2, &[100, 100, 100])).await.unwrap();
    // 300 messages of lag want 30 consumers; the topic has 3 partitions.
    eventually(Duration::from_secs(30), "the scale-up to 3", || {
        (api.replicas("streams", "orders-consumer") == 3).then_some(())
    })
    .await;
    cycles_pass(port, 2).await;
    let writes: Vec<i64> = api.scale_writes().iter().map(|w| w.replicas).collect();
    assert_eq!(writes, vec![3], "never past the partitions; log:\n{}", daemon.log());
    assert!(daemon.log().contains("(at most 3: its partitions) → 3 wanted"), "{}", daemon.log());
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(metric(&metrics, "queue_autoscaler_source_value{source=\"orders_lag\",kind=\"kafka\"}"), 300.0);
    let partition =
        format!("queue_autoscaler_kafka_partition_lag{{source=\"orders_lag\",topic=\"{topic}\",partition=\"2\"}}");
    assert_eq!(metric(&metrics, &partition), 100.0);
}

#[test]
fn once_json_has_the_partitions() {
    let brokers = require();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (topic, group) = (unique("once-orders"), unique("once-group"));
    runtime.block_on(create_topic(&brokers, &topic, 2));
    produce(&brokers, &topic, &[7, 3]);
    commit(&brokers, &group, &[(&topic, 0, 2)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = format!(
        "[sources.lag]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\noffset_reset = \"earliest\"\n\n[[targets]]\nname = \"c\"\ndeployment = \"c\"\nmax_replicas = 5\ntriggers = [{{ source = \"lag\", per_replica = 1 }}]\n"
    );
    std::fs::write(&path, config).unwrap();
    let out =
        support::daemon::run(&["once", "--config", path.to_str().unwrap(), "--dry-run", "--output", "json"], None, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let partitions = &json[0]["triggers"][0]["partitions"];
    assert_eq!(partitions.as_array().unwrap().len(), 2);
    assert_eq!(partitions[0]["lag"], 5);
    assert_eq!(partitions[1]["committed"], serde_json::Value::Null);
    assert_eq!(partitions[1]["lag"], 3, "earliest: uncommitted partitions lag from the log start");
    assert_eq!(json[0]["triggers"][0]["value"], 8.0);
}
