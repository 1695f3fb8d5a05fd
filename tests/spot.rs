//! Spot placement end to end: the real binary, the test API server's pods, nodes and watches,
//! and a real Redis queue.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::apiserver::ApiServer;
use support::daemon::{Daemon, cycles_pass, free_port, http_get, metric, once_json, run};
use support::redis::{self as test_redis, push};
use support::toml::Toml;
use support::{eventually, unique};

const WAIT: Duration = Duration::from_secs(20);

/// 10 messages per replica, bounds [1, 10]; the spot twin takes everything above a base of 1;
/// spot pods count as failing after 2 s Unschedulable; recovery starts after 3 s without any.
fn config(queue: &str, port: u16) -> String {
    let spot = r#"
deployment = "worker-spot"
on_demand_base = 1
on_demand_percentage = 0
unschedulable_after = "2s"
retry_spot_after = "3s"
"#;
    Toml::daemon(port)
        .celery("jobs", queue)
        .target("workers", "data", "worker")
        .bounds(1, 10)
        .per_replica("jobs", 10)
        .scale_up_pods(10)
        .table("spot", spot)
        .render()
}

/// The replicas written to one Deployment, in order.
fn writes_to(api: &ApiServer, deployment: &str) -> Vec<i64> {
    api.scale_writes().iter().filter(|w| w.name == deployment).map(|w| w.replicas).collect()
}

fn spot_pod_labels() -> [(&'static str, &'static str); 1] {
    [("app", "worker-spot")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_spot_moves_to_on_demand_and_comes_back_and_reclaimed_nodes_count_as_leaving() {
    let mut redis = test_redis::connect().await;
    let queue = unique("spot");
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    api.add_deployment("data", "worker-spot", 0);
    api.put_node("spot-node", &[], false);
    push(&mut redis, &queue, &queue, 50).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&queue, port), &["run"], Some(&api.kubeconfig(dir.path())), &[]);

    // 50 messages → 5 replicas: the base of 1 on-demand, 4 on spot.
    eventually(WAIT, "4 spot replicas", || (api.replicas("data", "worker-spot") == 4).then_some(())).await;
    assert_eq!(api.replicas("data", "worker"), 1);

    // The scheduler cannot place them: after 2 s they are a shortfall, covered on-demand.
    for i in 0..4 {
        api.put_pod("data", &format!("spot-{i}"), &spot_pod_labels(), None, Some(Duration::ZERO));
    }
    eventually(WAIT, "the fallback to on-demand", || (api.replicas("data", "worker") == 5).then_some(())).await;
    assert_eq!(api.replicas("data", "worker-spot"), 4, "spot keeps its share so capacity can come back");
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    let target = "target=\"workers\",namespace=\"data\",deployment=\"worker\"";
    assert_eq!(metric(&metrics, &format!("queue_autoscaler_spot_fallback_active{{{target}}}")), 1.0);
    assert_eq!(metric(&metrics, &format!("queue_autoscaler_spot_shortfall{{{target}}}")), 4.0);
    let spot_desired = format!("queue_autoscaler_target_replicas{{{target},capacity=\"spot\",state=\"desired\"}}");
    assert_eq!(metric(&metrics, &spot_desired), 4.0);
    let warning =
        eventually(WAIT, "a SpotFallback Event", || api.events().into_iter().find(|e| e["reason"] == "SpotFallback"))
            .await;
    assert_eq!(warning["type"], "Warning");
    assert!(warning["note"].as_str().unwrap().contains("spot replicas cannot run: +4 on-demand"), "{warning}");

    // Spot capacity arrives: the pods run. After 3 s the stand-ins go back step by step.
    for i in 0..4 {
        api.put_pod("data", &format!("spot-{i}"), &spot_pod_labels(), Some("spot-node"), None);
    }
    eventually(WAIT, "the shift back to spot", || (api.replicas("data", "worker") == 1).then_some(())).await;
    assert_eq!(writes_to(&api, "worker"), vec![5, 3, 2, 1], "half of the stand-ins per step; log:\n{}", daemon.log());
    eventually(WAIT, "a SpotRecovered Event", || {
        api.events().iter().any(|e| e["reason"] == "SpotRecovered").then_some(())
    })
    .await;

    // The termination handler taints the node: its pods are leaving, so on-demand covers them.
    api.put_node("spot-node", &["aws-node-termination-handler/spot-itn"], false);
    eventually(WAIT, "the fallback for a reclaimed node", || (api.replicas("data", "worker") == 5).then_some(())).await;

    for write in api.scale_writes() {
        assert!((0..=10).contains(&write.replicas), "write out of bounds: {write:?}");
    }
    let () = redis::cmd("DEL").arg(&queue).query_async(&mut redis).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_ins_never_take_the_total_past_max() {
    let mut redis = test_redis::connect().await;
    let queue = unique("spot-max");
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    api.add_deployment("data", "worker-spot", 7);
    push(&mut redis, &queue, &queue, 80).await;
    for i in 0..7 {
        api.put_pod("data", &format!("spot-{i}"), &spot_pod_labels(), None, Some(Duration::from_secs(600)));
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = Daemon::start(&config(&queue, port), &["run"], Some(&api.kubeconfig(dir.path())), &[]);
    // 80 → 8 replicas: 1 + 7 spot, all 7 failing; room under max 10 for only 2 stand-ins.
    eventually(WAIT, "the stand-ins", || (api.replicas("data", "worker") == 3).then_some(())).await;
    cycles_pass(port, 2).await;
    assert_eq!(api.replicas("data", "worker") + api.replicas("data", "worker-spot"), 10, "log:\n{}", daemon.log());
    let () = redis::cmd("DEL").arg(&queue).query_async(&mut redis).await.unwrap();
}

#[tokio::test]
async fn once_json_shows_the_split_in_dry_run_without_a_cluster() {
    let mut redis = test_redis::connect().await;
    let queue = unique("spot-once");
    push(&mut redis, &queue, &queue, 70).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let text = config(&queue, free_port()).replace("on_demand_percentage = 0", "on_demand_percentage = 25");
    std::fs::write(&path, text).unwrap();
    let out = run(&["once", "--config", path.to_str().unwrap(), "--dry-run", "--output", "json"], None, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 70 → 7 replicas: base 1 + ceil(6 × 25%) = 3 on-demand, 4 spot.
    assert_eq!(json[0]["desired"], 7);
    assert_eq!(json[0]["split"], serde_json::json!({ "on_demand": 3, "spot": 4 }));
    assert_eq!(json[0]["spot"]["health_known"], false);
    assert!(json[0]["reason"].as_str().unwrap().contains("split 3 on-demand + 4 spot"), "{}", json[0]["reason"]);
    let () = redis::cmd("DEL").arg(&queue).query_async(&mut redis).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reads_spot_health_from_the_cluster() {
    let mut redis = test_redis::connect().await;
    let queue = unique("spot-once-cluster");
    push(&mut redis, &queue, &queue, 50).await;
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    api.add_deployment("data", "worker-spot", 4);
    api.put_node("spot-node", &["karpenter.sh/disrupted"], false);
    api.put_pod("data", "spot-0", &spot_pod_labels(), None, Some(Duration::from_secs(600)));
    api.put_pod("data", "spot-1", &spot_pod_labels(), None, Some(Duration::from_secs(1)));
    api.put_pod("data", "spot-2", &spot_pod_labels(), Some("spot-node"), None);
    api.put_pod("data", "other", &[("app", "worker")], None, Some(Duration::from_secs(600)));
    let dir = tempfile::tempdir().unwrap();
    let config = config(&queue, free_port()).replace("unschedulable_after = \"2s\"", "unschedulable_after = \"5m\"");
    let json = once_json(&config, api.kubeconfig(dir.path())).await;
    let spot = &json[0]["spot"];
    assert_eq!(spot["health_known"], true, "{json}");
    // spot-0 Unschedulable for 10 minutes, spot-2 on a node Karpenter is disrupting; spot-1 is
    // recent, and "other" is not the twin's.
    assert_eq!((spot["unschedulable"].as_u64(), spot["reclaimed"].as_u64()), (Some(1), Some(1)), "{json}");
    assert_eq!(json[0]["split"], serde_json::json!({ "on_demand": 3, "spot": 4 }), "{json}");
    assert!(api.scale_writes().is_empty(), "dry run");
    let () = redis::cmd("DEL").arg(&queue).query_async(&mut redis).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_answered_410_gone_lists_again_and_is_counted() {
    let mut redis = test_redis::connect().await;
    let queue = unique("spot-gone");
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    api.add_deployment("data", "worker-spot", 4);
    api.put_node("spot-node", &[], false);
    for i in 0..4 {
        api.put_pod("data", &format!("spot-{i}"), &spot_pod_labels(), Some("spot-node"), None);
    }
    push(&mut redis, &queue, &queue, 50).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&queue, port), &["run"], Some(&api.kubeconfig(dir.path())), &[]);
    cycles_pass(port, 2).await;
    assert!(writes_to(&api, "worker").is_empty(), "all spot pods run: nothing to cover");

    // etcd compacts past the pod watch's version (a Deployment changed since its last event),
    // and the API server drops its watches: resuming is answered 410 Gone.
    api.add_deployment("data", "other", 1);
    api.compact();
    api.close_watches();
    let gone = "queue_autoscaler_watch_errors_total{watch=\"pods\",error=\"gone\"}";
    let counted =
        || http_get(port, "/metrics").map(|(_, page)| support::daemon::metric(&page, gone)).filter(|n| *n >= 1.0);
    eventually(WAIT, "the 410 counted", counted).await;
    assert!(daemon.log().contains("watch failed; resuming"), "log:\n{}", daemon.log());

    // The watch listed again and sees what changes now: the spot pods cannot be scheduled.
    for i in 0..4 {
        api.put_pod("data", &format!("spot-{i}"), &spot_pod_labels(), None, Some(Duration::ZERO));
    }
    eventually(WAIT, "the fallback seen through the new watch", || (api.replicas("data", "worker") == 5).then_some(()))
        .await;
    let () = redis::cmd("DEL").arg(&queue).query_async(&mut redis).await.unwrap();
}
