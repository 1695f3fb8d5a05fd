//! The Airflow source's poll on a `task_instance` of 1,000,000 rows (mostly finished, a few
//! thousand queued or running) on the local PostgreSQL, beside the official Helm chart's KEDA
//! query and a forced full scan; and the plans of our statements, to show they use `ti_state`.
//!
//! `cargo bench --bench airflow` (needs PostgreSQL on 127.0.0.1:5432, or TEST_POSTGRES_URL)

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::airflow::{AirflowSettings, AirflowSource};
use sqlx::Executor;
use support::airflow::{Backend, Schema, TestDb};

const ROWS: u64 = 1_000_000;

/// The official chart's default KEDA query (with worker_concurrency 16).
const KEDA_QUERY: &str =
    "SELECT ceil(COUNT(*)::decimal / 16) FROM task_instance WHERE (state='running' OR state='queued')";
/// The same query under its own text, for the forced full scan.
const FULL_SCAN_QUERY: &str =
    "SELECT ceil(COUNT(*)::decimal / 16) FROM task_instance WHERE (state='running' OR state='queued') /* no index */";

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (db, pool) = runtime.block_on(async {
        let db = TestDb::create(Backend::Postgres, "bench_airflow").await;
        db.create_task_instance(Schema::V2_10).await;
        let started = std::time::Instant::now();
        db.fill_like_production(ROWS).await;
        println!("filled {ROWS} rows in {:.1} s", started.elapsed().as_secs_f64());
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        (db, pool)
    });

    let mut settings = AirflowSettings::all_queues();
    settings.exclude_queues = vec!["kubernetes".to_owned()];
    settings.exclude_executors = vec!["KubernetesExecutor".to_owned()];
    // sqlx builds its (lazy) pool inside a Tokio context.
    let source = runtime.block_on(async {
        let pool = AirflowSource::open(&SecretUrl::new(db.url.clone()), Duration::from_secs(10)).expect("pool");
        AirflowSource::new(pool, settings)
    });
    let expected = runtime.block_on(source.poll()).expect("poll").value;

    let samples = [
        common::measure("KEDA chart query, index used (baseline)", 1, 3, 30, || {
            runtime.block_on(async { sqlx::query(KEDA_QUERY).fetch_one(&pool).await.expect("keda query") });
        }),
        common::measure("KEDA chart query, forced full scan", 1, 1, 10, || {
            runtime.block_on(async {
                let mut tx = pool.begin().await.expect("begin");
                tx.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off")
                    .await
                    .expect("set");
                // Its own text, so that its own plan is prepared under these settings (a cached
                // plan of the baseline's text would be reused whatever they say).
                sqlx::query(FULL_SCAN_QUERY).fetch_one(&mut *tx).await.expect("full scan");
            });
        }),
        common::measure("source poll (2 statements: counts per state, running keys)", 1, 3, 30, || {
            let value = runtime.block_on(source.poll()).expect("poll").value;
            assert_eq!(value, expected);
        }),
    ];
    common::report(&format!("airflow: a poll of task_instance with {ROWS} rows, {expected} matching"), &samples);

    for (sql, binds) in runtime.block_on(source.statements()).expect("statements") {
        let plan = runtime.block_on(db.explain(&sql, &binds));
        println!("\nEXPLAIN {sql}");
        for line in &plan {
            println!("  {line}");
        }
        let text = plan.join("\n");
        assert!(text.contains("ti_state"), "the poll must use the ti_state index");
        assert!(!text.contains("Seq Scan on task_instance"), "the poll must not scan the whole table");
    }
    println!("→ both use ti_state, no sequential scan of task_instance");

    runtime.block_on(async {
        pool.close().await;
        db.drop_database().await;
    });
}
