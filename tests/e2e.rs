//! The real binary (`run`) against the test Kubernetes API server and the real Redis.

mod support;

use std::time::Duration;

use support::apiserver::ApiServer;
use support::daemon::{Daemon, cycles_pass, free_port, http_get, metric};
use support::redis as test_redis;
use support::scenario::Scenario;
use support::toml::Toml;
use support::{eventually, unique};

const WAIT: Duration = Duration::from_secs(20);

/// A config with one Celery source on `queue` and one target on `namespace/deployment`:
/// 10 messages per replica, 1 s polls, the HPA's default rate policies over 500 ms instead of
/// 15 s (shorter than a poll, so each poll may take one full step whatever the timer's jitter),
/// and no scale-down window, so tests run in seconds.
fn config(queue: &str, redis_url: &str, deployment: &str, min: u32, max: u32, port: u16) -> String {
    let hpa_up = r#"policies = [{ type = "pods", value = 4, period = "500ms" }, { type = "percent", value = 100, period = "500ms" }]"#;
    Toml::daemon(port)
        .celery_at("jobs", redis_url, queue)
        .raw("timeout = \"1s\"")
        .target("workers", "data", deployment)
        .bounds(min, max)
        .per_replica("jobs", 10)
        .table("scale_up", hpa_up)
        .scale_down_at_once()
        .table("fallback", "failure_threshold = 2\nreplicas = \"hold\"")
        .render()
}

/// Starts the binary on a scenario's queue and cluster.
trait Start {
    /// The binary with `args`, at most `max` replicas, its admin port on `port`.
    fn daemon(&self, args: &[&str], max: u32, port: u16) -> Daemon;
}

impl Start for Scenario {
    fn daemon(&self, args: &[&str], max: u32, port: u16) -> Daemon {
        let config = config(&self.queue, &test_redis::url(), "worker", 1, max, port);
        Daemon::start(&config, args, Some(&self.api.kubeconfig(self.dir.path())), &[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_up_as_the_queue_grows_and_down_as_it_drains() {
    let mut setup = Scenario::new("e2e-grow", 1).await;
    let port = free_port();
    setup.push(35).await;
    let mut daemon = setup.daemon(&["run"], 8, port);

    // 35 messages → 4 wanted; from 1, +4 pods allows 5.
    eventually(WAIT, "a scale-up to 4", || setup.replicas_are(4)).await;
    setup.push(60).await;
    // 95 messages → 10 wanted, capped at max_replicas 8 (which +4 pods from 4 also allows).
    eventually(WAIT, "a scale-up to 8", || setup.replicas_are(8)).await;
    setup.drain().await;
    eventually(WAIT, "a scale-down to 1", || setup.replicas_are(1)).await;

    let api = &setup.api;
    assert_eq!(setup.written(), vec![4, 8, 1], "log:\n{}", daemon.log());
    for write in api.scale_writes() {
        assert_eq!(write.method, "merge");
        assert_eq!(write.field_manager.as_deref(), Some("queue-autoscaler"));
    }
    let notes: Vec<String> = api.events().iter().map(|e| e["note"].as_str().unwrap_or("").to_owned()).collect();
    assert!(notes.iter().any(|n| n.starts_with("New size: 4; reason: jobs=35 → 4 wanted")), "{notes:#?}");
    assert!(api.events().iter().all(|e| e["reason"] == "SuccessfulRescale" && e["regarding"]["kind"] == "Deployment"));

    let (_, metrics) = http_get(port, "/metrics").expect("metrics endpoint");
    let target = "target=\"workers\",namespace=\"data\",deployment=\"worker\"";
    assert_eq!(metric(&metrics, &format!("queue_autoscaler_target_desired_replicas{{{target}}}")), 1.0);
    assert_eq!(metric(&metrics, &format!("queue_autoscaler_scale_events_total{{{target},direction=\"up\"}}")), 2.0);
    assert_eq!(metric(&metrics, &format!("queue_autoscaler_scale_events_total{{{target},direction=\"down\"}}")), 1.0);
    let version = format!("queue_autoscaler_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
    assert_eq!(metric(&metrics, &version), 1.0);
    metric(&metrics, "queue_autoscaler_source_value{source=\"jobs\",kind=\"celery\"}");
    for name in ["queue_autoscaler_source_poll_seconds_bucket", "queue_autoscaler_loop_seconds_bucket"] {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!("{name}{{"))),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert_eq!(http_get(port, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(http_get(port, "/readyz").map(|r| r.0), Some(200));

    let (status, took) = daemon.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{}", daemon.log());
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_is_never_written_and_paused_replicas_pins_it() {
    let mut setup = Scenario::new("e2e-pause", 2).await;
    setup.api.annotate("data", "worker", "queue-autoscaler.io/paused", Some("true"));
    setup.push(90).await;
    let port = free_port();
    let daemon = setup.daemon(&["run"], 10, port);

    eventually(WAIT, "a paused decision", || daemon.log().contains("reason=paused by annotation").then_some(())).await;
    cycles_pass(port, 2).await;
    assert!(setup.written().is_empty(), "paused, yet written: {:?}", setup.written());

    setup.api.annotate("data", "worker", "queue-autoscaler.io/paused-replicas", Some("3"));
    eventually(WAIT, "the pinned count", || setup.replicas_are(3)).await;
    cycles_pass(port, 2).await;
    assert_eq!(setup.written(), vec![3], "pinned: one write, then none; log:\n{}", daemon.log());
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reads_but_never_writes() {
    let mut setup = Scenario::new("e2e-dry", 1).await;
    setup.push(50).await;
    let port = free_port();
    let daemon = setup.daemon(&["run", "--dry-run"], 10, port);
    eventually(WAIT, "a decision to scale up", || daemon.log().contains("desired=5").then_some(())).await;
    cycles_pass(port, 2).await;
    assert!(setup.written().is_empty());
    assert!(setup.api.requests().iter().all(|r| r.method == "GET"), "{:?}", setup.api.requests());
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_never_scales_down() {
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 6);
    let dead_redis = format!("redis://127.0.0.1:{}/0", free_port());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        &config("q", &dead_redis, "worker", 1, 10, port),
        &["run"],
        Some(&api.kubeconfig(dir.path())),
        &[],
    );
    eventually(WAIT, "the fallback", || {
        daemon.log().contains("failed polls in a row: fallback holds replicas").then_some(())
    })
    .await;
    assert!(api.scale_writes().is_empty(), "{:?}", api.scale_writes());
    assert_eq!(api.replicas("data", "worker"), 6);
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    let errors = "queue_autoscaler_source_errors_total{source=\"jobs\",kind=\"celery\",error=\"connect\"}";
    assert!(metric(&metrics, errors) >= 2.0, "{metrics}");
    let fallbacks = "queue_autoscaler_decisions_total{target=\"workers\",namespace=\"data\",deployment=\"worker\",reason=\"fallback\"}";
    assert!(metric(&metrics, fallbacks) >= 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_deployment_is_reported_and_the_daemon_keeps_running() {
    let api = ApiServer::start().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(
        &config(&unique("e2e-404"), &test_redis::url(), "nowhere", 1, 10, port),
        &["run"],
        Some(&api.kubeconfig(dir.path())),
        &[],
    );
    eventually(WAIT, "the 404 in the log", || daemon.log().contains("the Deployment does not exist").then_some(()))
        .await;
    let series = "queue_autoscaler_target_errors_total{target=\"workers\",namespace=\"data\",deployment=\"nowhere\",error=\"not_found\"}";
    let metrics = eventually(WAIT, "the error metric", || {
        http_get(port, "/metrics").map(|(_, m)| m).filter(|m| m.lines().any(|l| l.starts_with(series)))
    })
    .await;
    assert!(metric(&metrics, series) >= 1.0, "{metrics}");
    assert!(daemon.is_running());
}
