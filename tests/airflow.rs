//! The Airflow source against real PostgreSQL and MariaDB, on `task_instance` tables created as
//! Airflow 2.9, 2.10 and 3.x define them.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::airflow::AirflowSettings;
use queue_autoscaler::source::{Settings, Shared, Source, SourceError, SourceSpec};
use support::airflow::{Backend, Schema, TaskRow, TestDb};

/// (state, queue, executor, hostname).
const ROWS: [TaskRow; 14] = [
    (Some("queued"), Some("default"), None, None),
    (Some("queued"), Some("default"), Some("CeleryExecutor"), None),
    (Some("running"), Some("default"), None, Some("worker-a")),
    (Some("running"), Some("default"), None, Some("worker-a.workers.data.svc.cluster.local")),
    (Some("running"), Some("etl"), None, Some("worker-b")),
    (Some("queued"), Some("kubernetes"), None, None),
    (Some("queued"), Some("default"), Some("KubernetesExecutor"), None),
    (Some("scheduled"), Some("default"), None, None),
    (Some("success"), Some("default"), None, Some("worker-c")),
    (Some("success"), Some("default"), None, Some("worker-a")),
    (Some("deferred"), Some("default"), None, None),
    (Some("up_for_retry"), Some("default"), None, None),
    (None, Some("default"), None, None),
    (Some("queued"), None, None, None),
];

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn source(url: &str, settings: AirflowSettings) -> Source {
    source_with_timeout(url, settings, Duration::from_secs(5))
}

fn source_with_timeout(url: &str, settings: AirflowSettings, timeout: Duration) -> Source {
    let spec = SourceSpec { url: Some(SecretUrl::new(url)), timeout, settings: Settings::Airflow(settings) };
    Source::new(&spec).expect("source")
}

async fn value(url: &str, settings: AirflowSettings) -> f64 {
    source(url, settings).poll().await.expect("poll").value
}

fn excluding() -> AirflowSettings {
    let mut settings = AirflowSettings::all_queues();
    settings.exclude_queues = strings(&["kubernetes"]);
    settings.exclude_executors = strings(&["KubernetesExecutor"]);
    settings
}

/// Every count the source makes on `ROWS`, for one backend and schema.
async fn check_counts(backend: Backend, schema: Schema) {
    let db = TestDb::create(backend, "airflow_counts").await;
    db.create_task_instance(schema).await;
    db.insert(schema, &ROWS).await;
    let url = db.url.clone();
    let executor_column = schema != Schema::V2_9;

    // Defaults: every queue, queued + running: rows 0-4, 5, 6 and 13.
    assert_eq!(value(&url, AirflowSettings::all_queues()).await, 8.0, "{backend:?} {schema:?} defaults");
    // CeleryKubernetesExecutor's queue and KubernetesExecutor tasks are not Celery work; a NULL
    // queue or executor is never excluded. Before 2.10 there is no executor to exclude by.
    let expected = if executor_column { 6.0 } else { 7.0 };
    assert_eq!(value(&url, excluding()).await, expected, "{backend:?} {schema:?} exclusions");
    let mut default_queue = excluding();
    default_queue.queues = strings(&["default"]);
    let expected = if executor_column { 4.0 } else { 5.0 };
    assert_eq!(value(&url, default_queue).await, expected, "{backend:?} {schema:?} queue default");
    let mut scheduled = AirflowSettings::all_queues();
    scheduled.states = strings(&["scheduled", "deferred", "up_for_retry"]);
    assert_eq!(value(&url, scheduled).await, 3.0, "{backend:?} {schema:?} other states");

    let busy = source(&url, excluding()).busy_hosts().await.expect("an airflow source knows").expect("busy hosts");
    let expected: BTreeMap<String, u32> =
        [("worker-a", 1), ("worker-a.workers.data.svc.cluster.local", 1), ("worker-b", 1)]
            .map(|(h, n)| (h.to_owned(), n))
            .into();
    assert_eq!(busy, expected, "{backend:?} {schema:?} running tasks per hostname");
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_airflow_2_9() {
    check_counts(Backend::Postgres, Schema::V2_9).await;
}

#[tokio::test]
async fn postgres_airflow_2_10() {
    check_counts(Backend::Postgres, Schema::V2_10).await;
}

#[tokio::test]
async fn postgres_airflow_3() {
    check_counts(Backend::Postgres, Schema::V3).await;
}

#[tokio::test]
async fn mariadb_airflow_2_9() {
    check_counts(Backend::MariaDb, Schema::V2_9).await;
}

#[tokio::test]
async fn mariadb_airflow_2_10() {
    check_counts(Backend::MariaDb, Schema::V2_10).await;
}

#[tokio::test]
async fn mariadb_airflow_3() {
    check_counts(Backend::MariaDb, Schema::V3).await;
}

#[tokio::test]
async fn an_upgrade_to_2_10_under_a_running_source_brings_executor_exclusions() {
    let db = TestDb::create(Backend::Postgres, "airflow_upgrade").await;
    db.create_task_instance(Schema::V2_9).await;
    db.insert(Schema::V2_9, &ROWS).await;
    let source = source(&db.url, excluding());
    assert_eq!(source.poll().await.expect("poll").value, 7.0, "2.9: no executor to exclude by");
    // Airflow's 2.10 migration adds the column to the database in use; a task goes to
    // KubernetesExecutor.
    db.execute_atomically(
        "ALTER TABLE task_instance ADD COLUMN executor VARCHAR(1000);\n\
         UPDATE task_instance SET executor = 'KubernetesExecutor' WHERE state = 'queued' AND queue = 'default'",
    )
    .await;
    // The three queued tasks on `default` are now KubernetesExecutor's: 7 − 3.
    assert_eq!(source.poll().await.expect("poll").value, 4.0, "the same source sees the new column");
    db.drop_database().await;
}

#[tokio::test]
async fn sources_on_one_database_share_one_small_pool() {
    let db = TestDb::create(Backend::Postgres, "airflow_pool").await;
    db.create_task_instance(Schema::V2_10).await;
    db.insert(Schema::V2_10, &ROWS).await;
    let mut shared = Shared::default();
    let sources: Vec<Source> = (0..6)
        .map(|i| {
            let mut settings = AirflowSettings::all_queues();
            settings.queues = strings(&[["default", "etl"][i % 2]]);
            let spec = SourceSpec {
                url: Some(SecretUrl::new(db.url.clone())),
                timeout: Duration::from_secs(5),
                settings: Settings::Airflow(settings),
            };
            Source::with_shared(&spec, &mut shared).expect("source")
        })
        .collect();
    let values = futures_util::future::join_all(sources.iter().map(|s| s.poll())).await;
    let values: Vec<f64> = values.into_iter().map(|v| v.expect("poll").value).collect();
    assert_eq!(values, vec![5.0, 1.0, 5.0, 1.0, 5.0, 1.0], "default: rows 0-3 and 6; etl: row 4");
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    let connections: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'queue-autoscaler'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!((1..=2).contains(&connections), "six sources, one pool of at most 2 connections: {connections}");
    admin.close().await;
    drop(sources);
    db.drop_database().await;
}

#[tokio::test]
async fn a_database_without_task_instance_is_a_clear_error() {
    let db = TestDb::create(Backend::Postgres, "airflow_empty").await;
    let error = source(&db.url, AirflowSettings::all_queues()).poll().await.expect_err("no table");
    assert!(matches!(&error, SourceError::Protocol(m) if m.contains("no task_instance table")), "{error}");
    db.drop_database().await;
}

#[tokio::test]
async fn a_database_that_is_down_is_a_failed_poll_and_hides_the_password() {
    let port = support::daemon::free_port();
    for url in [
        format!("postgres://airflow:s3cret@127.0.0.1:{port}/airflow"),
        format!("mysql://airflow:s3cret@127.0.0.1:{port}/airflow"),
    ] {
        let started = std::time::Instant::now();
        let source = source_with_timeout(&url, AirflowSettings::all_queues(), Duration::from_millis(500));
        let error = source.poll().await.expect_err("down");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded by the source timeout (500 ms), with room for a loaded machine"
        );
        // Usually a connect error; on a loaded machine the poll's own timeout may win the race.
        assert!(matches!(error, SourceError::Connect(_) | SourceError::Timeout(_)), "{url}: {error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
