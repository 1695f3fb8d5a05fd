//! Sources report load, not just depth: each real source's readings, fed through the policy's
//! load estimator at a known pace, give back the rates that went in. The pace is virtual time
//! (the estimator takes the time of each poll as an argument): the counters are real, read from
//! real Kafka (tansu), PostgreSQL, MariaDB and Redis; the seconds between polls are stated, so
//! the expected rates are exact, and so are the assertions where the source counts.

mod support;

use std::time::Duration;

use queue_autoscaler::policy::load::{Estimate, Fleet, Method, Tracker};
use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::airflow::AirflowSettings;
use queue_autoscaler::source::celery::CelerySettings;
use queue_autoscaler::source::kafka::KafkaSettings;
use queue_autoscaler::source::{Reading, Settings, Source, SourceSpec};
use support::airflow::{Backend, Schema, TaskRow, TestDb};
use support::kafka::{commit, create_topic, produce, require};
use support::unique;

/// Seconds between two polls, in the estimator's clock.
const INTERVAL: u64 = 30;

fn source(settings: Settings, url: Option<String>) -> Source {
    Source::new(&SourceSpec { url: url.map(SecretUrl::new), timeout: Duration::from_secs(10), settings })
        .expect("source")
}

async fn poll(source: &Source) -> Reading {
    source.poll().await.expect("poll")
}

/// Observes `reading` as taken at poll number `i`.
fn observe(tracker: &mut Tracker, reading: &Reading, i: u64, fleet: Fleet) -> Estimate {
    tracker.observe(reading.load, fleet, Duration::from_secs(i * INTERVAL))
}

fn kafka_settings(brokers: &str, group: &str, topic: &str) -> KafkaSettings {
    let text = format!(
        "[sources.k]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\n\
         [[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 1\ntriggers = [{{ source = \"k\", per_replica = 1 }}]\n"
    );
    match queue_autoscaler::config::Config::parse(&text, Vec::new()).expect("config").sources["k"].settings.clone() {
        Settings::Kafka(settings) => settings,
        _ => unreachable!("a kafka source"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_end_and_committed_offsets_give_the_arrival_and_completion_rates() {
    let brokers = require();
    let (topic, group) = (unique("rates-topic"), unique("rates-group"));
    create_topic(&brokers, &topic, 2).await;
    let kafka = source(Settings::Kafka(kafka_settings(&brokers, &group, &topic)), None);
    let fleet = Fleet { ready: 2, slots: 1, prior_task_seconds: Some(0.1) };
    let mut tracker = Tracker::new();
    // Each interval: 300 messages produced (10/s), 150 consumed and committed (5/s).
    let mut committed = [0i64, 0];
    let mut last = None;
    for i in 0..4u64 {
        let (b, t) = (brokers.clone(), topic.clone());
        tokio::task::spawn_blocking(move || produce(&b, &t, &[150, 150])).await.unwrap();
        committed = [committed[0] + 75, committed[1] + 75];
        let (b, t, g) = (brokers.clone(), topic.clone(), group.clone());
        tokio::task::spawn_blocking(move || commit(&b, &g, &[(&t, 0, committed[0]), (&t, 1, committed[1])]))
            .await
            .unwrap();
        let reading = poll(&kafka).await;
        assert_eq!(reading.load.arrived, Some(300 * (i + 1)), "the end offsets count what arrived");
        assert_eq!(reading.load.completed, Some(150 * (i + 1)), "what arrived minus the lag");
        assert_eq!(reading.load.in_flight, None, "a Kafka group's work in flight is not observable");
        last = Some(observe(&mut tracker, &reading, i, fleet));
    }
    let estimate = last.expect("polled");
    assert_eq!(estimate.method, Method::Counted);
    assert!((estimate.arrival_rate - 10.0).abs() < 1e-9, "300 per 30 s: {estimate:?}");
    assert!((estimate.completion_rate.unwrap_or(0.0) - 5.0).abs() < 1e-9, "150 per 30 s: {estimate:?}");
    assert_eq!(estimate.backlog, 600.0, "the lag: 1,200 produced, 600 committed");
}

/// `n` task instances in `state` on the default queue.
fn rows(state: &'static str, n: usize) -> Vec<TaskRow> {
    vec![(Some(state), Some("default"), None, Some("worker-a")); n]
}

async fn airflow_completions(backend: Backend, schema: Schema) {
    let db = TestDb::create(backend, "airflow_rates").await;
    db.create_task_instance(schema).await;
    // task_0..task_9 running, task_10..task_14 queued.
    let mut all = rows("running", 10);
    all.extend(rows("queued", 5));
    db.insert(schema, &all).await;
    let airflow = source(Settings::Airflow(AirflowSettings::all_queues()), Some(db.url.clone()));
    let fleet = Fleet { ready: 2, slots: 8, prior_task_seconds: Some(60.0) };
    let mut tracker = Tracker::new();
    let first = poll(&airflow).await;
    assert_eq!((first.value, first.load.waiting, first.load.in_flight), (15.0, 5.0, Some(10.0)), "{backend:?}");
    assert_eq!(first.load.completed, Some(0), "the first poll is a baseline");
    observe(&mut tracker, &first, 0, fleet);
    // In one transaction, as Airflow's scheduler and workers commit: 4 finish (3 succeed, 1 fails
    // into up_for_retry), 3 queued start running, 6 new are queued.
    db.execute(
        "BEGIN;\n\
         UPDATE task_instance SET state = 'success' WHERE task_id IN ('task_0', 'task_1', 'task_2');\n\
         UPDATE task_instance SET state = 'up_for_retry' WHERE task_id = 'task_3';\n\
         UPDATE task_instance SET state = 'running' WHERE task_id IN ('task_10', 'task_11', 'task_12');\n\
         COMMIT",
    )
    .await;
    db.insert_from(schema, 100, &rows("queued", 6)).await;
    let second = poll(&airflow).await;
    assert_eq!(
        (second.load.waiting, second.load.in_flight),
        (8.0, Some(9.0)),
        "{backend:?}: 2 + 6 queued, 6 + 3 running"
    );
    assert_eq!(second.load.completed, Some(4), "{backend:?}: four left running");
    let estimate = observe(&mut tracker, &second, 1, fleet);
    assert_eq!(estimate.method, Method::Balance);
    // Arrivals = Δqueued + Δrunning + completions = (8 − 5) + (9 − 10) + 4 = 6 in 30 s.
    assert!((estimate.completion_rate.unwrap_or(0.0) - 4.0 / 30.0).abs() < 1e-9, "{estimate:?}");
    db.drop_database().await;
}

#[tokio::test]
async fn airflow_completions_on_postgres() {
    airflow_completions(Backend::Postgres, Schema::V2_10).await;
    airflow_completions(Backend::Postgres, Schema::V3).await;
}

#[tokio::test]
async fn airflow_completions_on_mariadb() {
    airflow_completions(Backend::MariaDb, Schema::V2_9).await;
    airflow_completions(Backend::MariaDb, Schema::V3).await;
}

#[tokio::test]
async fn celery_waiting_and_unacked_give_the_occupancy_estimate() {
    let mut redis = support::redis::connect().await;
    let prefix = unique("rates");
    let queue = "default";
    let mut settings = CelerySettings::for_queues(&[queue]);
    settings.global_keyprefix = format!("{prefix}:");
    settings.include_unacked = true;
    let key = format!("{prefix}:{queue}");
    let unacked = format!("{prefix}:unacked");
    let celery = source(Settings::Celery(settings), Some(support::redis::url()));
    // 20 s tasks, 40 reserved by the workers throughout: Little's law says 2 tasks/s keep them
    // busy; the queue grows by 30 each interval: 1/s more arrive than start.
    let fleet = Fleet { ready: 4, slots: 16, prior_task_seconds: Some(20.0) };
    let mut tracker = Tracker::new();
    for i in 0..40usize {
        let entry = support::redis::unacked_entry(&format!("{prefix}-{i}"), queue, None);
        let _: () =
            redis::cmd("HSET").arg(&unacked).arg(format!("tag-{i}")).arg(entry).query_async(&mut redis).await.unwrap();
    }
    let mut last = None;
    for i in 0..12u64 {
        support::redis::push(&mut redis, &key, queue, 30).await;
        let reading = poll(&celery).await;
        assert_eq!((reading.load.waiting, reading.load.in_flight), (30.0 * (i + 1) as f64, Some(40.0)));
        last = Some(observe(&mut tracker, &reading, i, fleet));
    }
    let estimate = last.expect("polled");
    assert_eq!(estimate.method, Method::Occupancy);
    assert!((estimate.arrival_rate - 3.0).abs() < 0.05, "1/s into the queue + 40 / 20 s started: {estimate:?}");
    support::redis::clean(&mut redis, &prefix).await;
}
