//! What the Airflow poll costs the metadata database: on a seeded `task_instance` each of its
//! statements is planned on the `ti_state` index (never a scan of the whole table), and the
//! server-side statement timeout really stops a statement that runs too long.

mod support;

use std::time::{Duration, Instant};

use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::SourceError;
use queue_autoscaler::source::airflow::{AirflowSettings, AirflowSource};
use support::airflow::{Backend, Schema, TestDb};

#[tokio::test]
async fn every_poll_statement_uses_the_state_index() {
    let db = TestDb::create(Backend::Postgres, "airflow_plan").await;
    db.create_task_instance(Schema::V2_10).await;
    db.fill_like_production(200_000).await;
    let mut settings = AirflowSettings::all_queues();
    settings.exclude_queues = vec!["kubernetes".to_owned()];
    settings.exclude_executors = vec!["KubernetesExecutor".to_owned()];
    let pool = AirflowSource::open(&SecretUrl::new(db.url.clone()), Duration::from_secs(5)).expect("pool");
    let source = AirflowSource::new(pool, settings);
    for (sql, binds) in source.statements().await.expect("statements") {
        let plan = db.explain(&sql, &binds).await.join("\n");
        assert!(plan.contains("ti_state"), "{sql}\n{plan}");
        assert!(!plan.contains("Seq Scan on task_instance"), "{sql}\n{plan}");
    }
    let reading = source.poll().await.expect("poll");
    // 400 queued + 400 running of 200,000, less the sixth or so on the kubernetes queue.
    assert!(reading.value > 600.0 && reading.value < 800.0, "{reading:?}");
    db.drop_database().await;
}

#[tokio::test]
async fn the_statement_timeout_stops_a_slow_statement_on_the_server() {
    let db = TestDb::create(Backend::Postgres, "airflow_timeout").await;
    let pool = AirflowSource::open(&SecretUrl::new(db.url.clone()), Duration::from_millis(300)).expect("pool");
    let started = Instant::now();
    let slow = pool.rows::<(String,)>("SELECT pg_sleep(5)::text", &[]).await;
    let error = slow.expect_err("cancelled by statement_timeout");
    assert!(matches!(&error, SourceError::Query(m) if m.contains("statement timeout")), "{error}");
    assert!(started.elapsed() < Duration::from_secs(4), "the server cancelled it, long before pg_sleep(5) ended");
    db.drop_database().await;
}
