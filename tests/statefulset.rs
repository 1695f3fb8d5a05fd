//! StatefulSet targets end to end: a real Airflow task table on PostgreSQL and the test API
//! server, whose StatefulSet controller creates and removes pods by ordinal, highest first (as
//! kubernetes pkg/controller/statefulset does). The official Airflow chart runs its Celery workers
//! this way (deploy/examples/airflow-statefulset.yaml).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::airflow::Schema;
use support::daemon::once_json;
use support::eventually;
use support::scenario::AirflowWorkers;

const WAIT: Duration = Duration::from_secs(20);

/// The Events recorded on the StatefulSet, as (regarding kind, note).
fn events(workers: &AirflowWorkers) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let on_set = workers.api.events().into_iter().filter(|e| e["regarding"]["name"] == "worker");
    on_set.map(|e| (text(&e["regarding"]["kind"]), text(&e["note"]))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_scales_through_its_scale_subresource_and_keeps_its_highest_busy_ordinal() {
    let workers = AirflowWorkers::statefulset("statefulset_e2e", 1).await;
    let daemon = workers.daemon(None);

    // 24 queued tasks → 6 workers, worker-0 … worker-5.
    let queued: Vec<_> = (0..24).map(|_| (Some("queued"), Some("default"), None, None)).collect();
    workers.db.insert(Schema::V2_10, &queued).await;
    eventually(WAIT, "the scale-up to 6", || workers.replicas_are(6)).await;
    let writes = workers.api.scale_writes();
    assert!(writes.iter().all(|w| w.kind == "StatefulSet" && w.name == "worker"), "{writes:?}");

    // All done but one task, on worker-3 by the FQDN a headless Service gives.
    workers
        .db
        .execute_atomically(
            "UPDATE task_instance SET state = 'success', hostname = 'worker-0';\n\
             UPDATE task_instance SET state = 'running', \
               hostname = 'worker-3.worker.airflow.svc.cluster.local' WHERE task_id = 'task_0'",
        )
        .await;
    // One running task wants 1 worker; a Deployment would go to 1 and keep the busy pod by its
    // deletion cost, but a StatefulSet removes 5, then 4, then 3: it stops at 4.
    eventually(WAIT, "the scale-down to the busy ordinal", || workers.replicas_are(4)).await;
    assert!(daemon.log().contains("held up by worker-3, which runs tasks"), "{}", daemon.log());
    assert!(workers.api.pod_names("airflow").contains(&"worker-3".to_owned()));
    let patches = workers.api.pod_patches();
    assert!(patches.is_empty(), "a StatefulSet reads no pod-deletion-cost: {patches:?}");
    let events = events(&workers);
    assert!(events.iter().any(|(kind, note)| kind == "StatefulSet" && note.starts_with("New size: 4;")), "{events:?}");

    workers.db.execute("UPDATE task_instance SET state = 'success' WHERE task_id = 'task_0'").await;
    eventually(WAIT, "the scale-down to 1", || workers.replicas_are(1)).await;
    let downs: Vec<i64> = workers.api.scale_writes().iter().map(|w| w.replicas).skip_while(|r| *r != 6).collect();
    assert_eq!(downs, [6, 4, 1], "never below the busy ordinal while it ran");
    workers.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reports_the_kind_and_reads_the_statefulset() {
    let workers = AirflowWorkers::statefulset("statefulset_once", 2).await;
    let queued: Vec<_> = (0..12).map(|_| (Some("queued"), Some("default"), None, None)).collect();
    workers.db.insert(Schema::V2_10, &queued).await;
    let json = once_json(&workers.config(None), workers.api.kubeconfig(workers.dir.path())).await;
    assert_eq!((json[0]["kind"].as_str(), json[0]["deployment"].as_str()), (Some("StatefulSet"), Some("worker")));
    assert_eq!((json[0]["current"].as_u64(), json[0]["desired"].as_u64()), (Some(2), Some(3)), "{json}");
    assert!(workers.api.scale_writes().is_empty(), "dry run");
    workers.drop_database().await;
}
