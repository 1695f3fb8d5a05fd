//! The Airflow source's poll on a `task_instance` of 1,000,000 rows (mostly finished, a few
//! thousand queued or running) on the local PostgreSQL, beside the official Helm chart's KEDA
//! query and a forced full scan; and the plan of our query, to show it uses the `ti_state` index.
//!
//! `cargo bench --bench airflow` (needs PostgreSQL on 127.0.0.1:5432, or TEST_POSTGRES_URL)

mod common;

use std::time::Duration;

use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::airflow::AirflowSettings;
use queue_autoscaler::source::{Settings, Source, SourceSpec};
use sqlx::{AssertSqlSafe, Executor};

const ROWS: u64 = 1_000_000;

/// The columns the source reads, the primary key and the indexes of Airflow 2.10's model.
const DDL: &str = "CREATE TABLE task_instance (
    task_id VARCHAR(250) NOT NULL, dag_id VARCHAR(250) NOT NULL, run_id VARCHAR(250) NOT NULL,
    map_index INTEGER NOT NULL DEFAULT -1, state VARCHAR(20), hostname VARCHAR(1000),
    pool VARCHAR(256) NOT NULL, pool_slots INTEGER NOT NULL DEFAULT 1, queue VARCHAR(256),
    priority_weight INTEGER, executor VARCHAR(1000), job_id INTEGER,
    start_date TIMESTAMP WITH TIME ZONE, end_date TIMESTAMP WITH TIME ZONE,
    CONSTRAINT task_instance_pkey PRIMARY KEY (dag_id, task_id, run_id, map_index));
CREATE INDEX ti_dag_state ON task_instance (dag_id, state);
CREATE INDEX ti_state ON task_instance (state);
CREATE INDEX ti_state_lkp ON task_instance (dag_id, task_id, run_id, state);
CREATE INDEX ti_pool ON task_instance (pool, state, priority_weight);
CREATE INDEX ti_job_id ON task_instance (job_id)";

/// 0.2% queued, 0.2% running, 0.2% scheduled, 2.4% failed, the rest success; one in seven on
/// the `kubernetes` queue.
const FILL: &str =
    "INSERT INTO task_instance (dag_id, task_id, run_id, map_index, pool, state, queue, hostname, priority_weight)
SELECT 'dag_' || (g % 200), 'task_' || (g % 50), 'run_' || (g / 10000), g, 'default_pool',
  CASE WHEN g % 1000 < 2 THEN 'queued' WHEN g % 1000 < 4 THEN 'running' WHEN g % 1000 < 6 THEN 'scheduled'
       WHEN g % 1000 < 30 THEN 'failed' ELSE 'success' END,
  CASE WHEN g % 7 = 0 THEN 'kubernetes' ELSE 'default' END, 'worker-' || (g % 20), 1
FROM generate_series(1, 1000000) g";

/// The official chart's default KEDA query (with worker_concurrency 16).
const KEDA_QUERY: &str =
    "SELECT ceil(COUNT(*)::decimal / 16) FROM task_instance WHERE (state='running' OR state='queued')";
/// The same query under its own text, for the forced full scan.
const FULL_SCAN_QUERY: &str =
    "SELECT ceil(COUNT(*)::decimal / 16) FROM task_instance WHERE (state='running' OR state='queued') /* no index */";

fn main() {
    let admin =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let name = format!("bench_airflow_{}", std::process::id());
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    let url = format!("{base}/{name}");
    let pool = runtime.block_on(async {
        let admin_pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {admin} ({e}); start it (pg_ctlcluster … main start)")
        });
        admin_pool.execute(AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create database");
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        for statement in DDL.split(";\n") {
            pool.execute(AssertSqlSafe(statement)).await.expect("DDL");
        }
        let started = std::time::Instant::now();
        pool.execute(FILL).await.expect("fill");
        pool.execute("VACUUM ANALYZE task_instance").await.expect("analyze");
        println!("filled {ROWS} rows in {:.1} s", started.elapsed().as_secs_f64());
        pool
    });

    let mut settings = AirflowSettings::all_queues();
    settings.exclude_queues = vec!["kubernetes".to_owned()];
    settings.exclude_executors = vec!["KubernetesExecutor".to_owned()];
    let spec = SourceSpec {
        url: Some(SecretUrl::new(url.clone())),
        timeout: Duration::from_secs(10),
        settings: Settings::Airflow(settings.clone()),
    };
    // sqlx builds its (lazy) pool inside a Tokio context.
    let source = runtime.block_on(async { Source::new(&spec) }).expect("source");
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
        common::measure("source poll (read-only tx, timeout, filters)", 1, 3, 30, || {
            let value = runtime.block_on(source.poll()).expect("poll").value;
            assert_eq!(value, expected);
        }),
    ];
    common::report(&format!("airflow: COUNT over task_instance of {ROWS} rows, {expected} matching"), &samples);

    let (filter, binds) = queue_autoscaler::source::airflow::filter(
        &settings,
        &settings.states,
        true,
        queue_autoscaler::source::airflow::Placeholders::Numbered,
    );
    let plan = runtime.block_on(async {
        let types = vec!["text"; binds.len()].join(", ");
        let args: Vec<String> = binds.iter().map(|b| format!("'{b}'")).collect();
        let mut connection = pool.acquire().await.expect("acquire");
        connection
            .execute(AssertSqlSafe(format!(
                "PREPARE poll({types}) AS SELECT COUNT(*) FROM task_instance WHERE {filter}"
            )))
            .await
            .expect("prepare");
        let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(format!("EXPLAIN EXECUTE poll({})", args.join(", "))))
            .fetch_all(&mut *connection)
            .await
            .expect("explain");
        rows.into_iter().map(|(line,)| line).collect::<Vec<_>>()
    });
    println!("\nEXPLAIN of the source's query:");
    for line in &plan {
        println!("  {line}");
    }
    let text = plan.join("\n");
    assert!(text.contains("ti_state"), "the poll must use the ti_state index");
    assert!(!text.contains("Seq Scan on task_instance"), "the poll must not scan the whole table");
    println!("→ uses ti_state, no sequential scan of task_instance");

    runtime.block_on(async {
        pool.close().await;
        let admin_pool = sqlx::PgPool::connect(&admin).await.expect("connect");
        admin_pool.execute(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.expect("drop database");
    });
}
