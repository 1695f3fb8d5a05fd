//! Busy-aware scale-in end to end: the real binary, a real Airflow task table on PostgreSQL, and
//! the test API server's pods (`support::scenario::AirflowWorkers`).

mod support;

use std::time::Duration;

use support::airflow::Schema;
use support::daemon::{cycles_pass, free_port, http_get, metric};
use support::eventually;
use support::scenario::AirflowWorkers;

const WAIT: Duration = Duration::from_secs(20);
const COST: &str = "controller.kubernetes.io/pod-deletion-cost";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_keeps_the_busy_workers_and_marks_them_costly() {
    let workers = AirflowWorkers::new("busy_e2e", 1).await;
    let (db, api, port) = (&workers.db, &workers.api, workers.port);
    let daemon = workers.daemon(None);

    // 20 queued tasks → 5 workers.
    let queued: Vec<_> = (0..20).map(|_| (Some("queued"), Some("default"), None, None)).collect();
    db.insert(Schema::V2_10, &queued).await;
    eventually(WAIT, "the scale-up to 5", || (api.replicas("airflow", "worker") == 5).then_some(())).await;
    workers.pods(5);

    // Everything finishes but two tasks, on worker-1 (by pod name) and worker-3 (by FQDN).
    db.execute_atomically(
        "UPDATE task_instance SET state = 'success', hostname = 'worker-0';\n\
         UPDATE task_instance SET state = 'running', hostname = 'worker-1' WHERE task_id = 'task_0';\n\
         UPDATE task_instance SET state = 'running', hostname = 'worker-3.workers.airflow.svc.cluster.local' WHERE task_id = 'task_1'",
    )
    .await;
    // 2 running tasks want 1 worker, but 2 pods are busy: the scale-down stops at 2.
    eventually(WAIT, "the scale-down to the busy pods", || (api.replicas("airflow", "worker") == 2).then_some(()))
        .await;
    assert_eq!(api.pod_annotations("airflow", "worker-1")[COST], "1000");
    assert_eq!(api.pod_annotations("airflow", "worker-3")[COST], "1000");
    let patched: Vec<String> = api.pod_patches().into_iter().map(|(_, name, _)| name).collect();
    assert_eq!(patched, vec!["worker-1", "worker-3"], "idle pods already cost 0: untouched");
    assert!(daemon.log().contains("held up by 2 worker pod(s) running tasks"), "{}", daemon.log());
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    let busy =
        "queue_autoscaler_target_busy_pods{target=\"airflow-workers\",namespace=\"airflow\",deployment=\"worker\"}";
    assert_eq!(metric(&metrics, busy), 2.0);

    // The ReplicaSet removed the three idle pods; worker-1's task ends.
    for idle in ["worker-0", "worker-2", "worker-4"] {
        api.delete_pod("airflow", idle);
    }
    db.execute("UPDATE task_instance SET state = 'success' WHERE task_id = 'task_0'").await;
    eventually(WAIT, "the scale-down to 1", || (api.replicas("airflow", "worker") == 1).then_some(())).await;
    assert_eq!(api.pod_annotations("airflow", "worker-1")[COST], "0", "idle again: cheap to delete");
    assert_eq!(api.pod_annotations("airflow", "worker-3")[COST], "1000", "still busy: unchanged, not rewritten");
    assert_eq!(api.pod_patches().len(), 3);
    for write in api.scale_writes() {
        assert!(write.replicas >= 1, "{write:?}");
    }
    workers.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_scale_down_while_the_busy_workers_are_unknown() {
    let workers = AirflowWorkers::new("busy_unknown", 4).await;
    let (api, port) = (&workers.api, workers.port);
    let dead = format!("postgres://airflow@127.0.0.1:{}/airflow", free_port());
    let daemon = workers.daemon(Some(&dead));
    // No tasks: 1 worker wanted, but which workers are busy cannot be learned.
    eventually(WAIT, "the held scale-down", || {
        daemon.log().contains("scale-down held: which workers are busy is unknown").then_some(())
    })
    .await;
    cycles_pass(port, 2).await;
    assert!(api.scale_writes().is_empty(), "{:?}", api.scale_writes());
    assert!(api.pod_patches().is_empty());
    workers.drop_database().await;
}
