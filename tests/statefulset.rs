//! StatefulSet targets end to end: the official Airflow chart's worker StatefulSet shape, a real
//! Airflow task table on PostgreSQL, and the test API server, whose StatefulSet controller
//! creates and removes pods by ordinal, highest first (as kubernetes pkg/controller/statefulset
//! does).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::airflow::{Backend, Schema, TestDb};
use support::apiserver::ApiServer;
use support::daemon::{Daemon, free_port, run};
use support::eventually;

const WAIT: Duration = Duration::from_secs(20);

/// Airflow tasks at 4 per worker, StatefulSet airflow/airflow-worker in [1, 10], busy-aware
/// scale-in, HPA-like rate policies over 500 ms and no scale-down window.
fn config(db_url: &str, port: u16) -> String {
    format!(
        r#"
[daemon]
interval = "1s"
listen = "127.0.0.1:{port}"

[sources.airflow]
kind = "airflow"
url = "{db_url}"

[[targets]]
name = "airflow-workers"
namespace = "airflow"
kind = "StatefulSet"
statefulset = "airflow-worker"
min_replicas = 1
max_replicas = 10
triggers = [{{ source = "airflow", per_replica = 4 }}]
protect_busy_workers = true

[targets.scale_up]
policies = [{{ type = "pods", value = 4, period = "500ms" }}]

[targets.scale_down]
stabilization = "0s"
policies = [{{ type = "percent", value = 100, period = "500ms" }}]
"#
    )
}

/// The Events recorded on the StatefulSet, as (regarding kind, note).
fn events(api: &ApiServer) -> Vec<(String, String)> {
    let on_set = |e: &Value| e["regarding"]["name"] == "airflow-worker";
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    api.events().iter().filter(|e| on_set(e)).map(|e| (text(&e["regarding"]["kind"]), text(&e["note"]))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_scales_through_its_scale_subresource_and_keeps_its_highest_busy_ordinal() {
    let db = TestDb::create(Backend::Postgres, "statefulset_e2e").await;
    db.create_task_instance(Schema::V2_10).await;
    let api = ApiServer::start().await;
    api.add_statefulset("airflow", "airflow-worker", 1);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&db.url, port), &["run"], Some(&api.kubeconfig(dir.path())), &[]);

    // 24 queued tasks → 6 workers, airflow-worker-0 … airflow-worker-5.
    let queued: Vec<_> = (0..24).map(|_| (Some("queued"), Some("default"), None, None)).collect();
    db.insert(Schema::V2_10, &queued).await;
    let replicas = || api.statefulset_replicas("airflow", "airflow-worker");
    eventually(WAIT, "the scale-up to 6", || (replicas() == 6).then_some(())).await;
    let writes = api.scale_writes();
    assert!(writes.iter().all(|w| w.kind == "StatefulSet" && w.name == "airflow-worker"), "{writes:?}");

    // All done but one task, on airflow-worker-3 by the FQDN the chart's headless Service gives.
    db.execute_atomically(
        "UPDATE task_instance SET state = 'success', hostname = 'airflow-worker-0';\n\
         UPDATE task_instance SET state = 'running', \
           hostname = 'airflow-worker-3.airflow-worker.airflow.svc.cluster.local' WHERE task_id = 'task_0'",
    )
    .await;
    // One running task wants 1 worker; a Deployment would go to 1 and keep the busy pod by its
    // deletion cost, but a StatefulSet removes 5, then 4, then 3: it stops at 4.
    eventually(WAIT, "the scale-down to the busy ordinal", || (replicas() == 4).then_some(())).await;
    assert!(daemon.log().contains("held up by airflow-worker-3, which runs tasks"), "{}", daemon.log());
    assert!(api.pod_names("airflow").contains(&"airflow-worker-3".to_owned()));
    assert!(api.pod_patches().is_empty(), "a StatefulSet reads no pod-deletion-cost: {:?}", api.pod_patches());
    assert!(
        events(&api).iter().any(|(kind, note)| kind == "StatefulSet" && note.starts_with("New size: 4;")),
        "{:?}",
        events(&api)
    );

    db.execute("UPDATE task_instance SET state = 'success' WHERE task_id = 'task_0'").await;
    eventually(WAIT, "the scale-down to 1", || (replicas() == 1).then_some(())).await;
    let downs: Vec<i64> = api.scale_writes().iter().map(|w| w.replicas).skip_while(|r| *r != 6).collect();
    assert_eq!(downs, [6, 4, 1], "never below the busy ordinal while it ran");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reports_the_kind_and_reads_the_statefulset() {
    let db = TestDb::create(Backend::Postgres, "statefulset_once").await;
    db.create_task_instance(Schema::V2_10).await;
    let queued: Vec<_> = (0..12).map(|_| (Some("queued"), Some("default"), None, None)).collect();
    db.insert(Schema::V2_10, &queued).await;
    let api = ApiServer::start().await;
    api.add_statefulset("airflow", "airflow-worker", 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config(&db.url, free_port())).unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let out = tokio::task::spawn_blocking(move || {
        run(&["once", "--config", path.to_str().unwrap(), "--dry-run", "--output", "json"], Some(&kubeconfig), &[])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json[0]["kind"].as_str(), json[0]["deployment"].as_str()),
        (Some("StatefulSet"), Some("airflow-worker"))
    );
    assert_eq!((json[0]["current"].as_u64(), json[0]["desired"].as_u64()), (Some(2), Some(3)), "{json}");
    assert!(api.scale_writes().is_empty(), "dry run");
    db.drop_database().await;
}
