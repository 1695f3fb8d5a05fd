//! Running in a cluster: two replicas with one writer (leader election on a Lease), and hot
//! config reload (symlink swap, invalid configs, SIGHUP, kept connections).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::apiserver::ApiServer;
use support::daemon::{Daemon, LEADER_ELECTION, cycles_pass, free_port, http_get, metric, swap_config};
use support::redis::{self as test_redis, PrivateRedis, push};
use support::scenario::Scenario;
use support::toml::Toml;
use support::{eventually, unique};

const WAIT: Duration = Duration::from_secs(20);

/// One Celery source, one target on data/worker (10 per replica, at most `max`), 1 s polls.
fn config(redis_url: &str, queue: &str, port: u16, max: u32, extra_daemon: &str) -> String {
    Toml::daemon(port)
        .raw(extra_daemon)
        .celery_at("jobs", redis_url, queue)
        .target("workers", "data", "worker")
        .max_replicas(max)
        .per_replica("jobs", 10)
        .scale_up_pods(10)
        .render()
}

fn holder(api: &ApiServer) -> Option<String> {
    api.lease("ops", "queue-autoscaler")?["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// Writers in the order their writes arrived, with repeats collapsed: ["a", "b"] means a wrote,
/// then b, and never again a.
fn writer_runs(api: &ApiServer) -> Vec<String> {
    let mut runs: Vec<String> = Vec::new();
    for write in api.scale_writes() {
        let token = write.token.unwrap_or_default();
        if runs.last() != Some(&token) {
            runs.push(token);
        }
    }
    runs
}

struct Pair {
    api: ApiServer,
    a: Daemon,
    b: Daemon,
    ports: (u16, u16),
    queue: String,
    _dir: tempfile::TempDir,
}

/// Two replicas of the daemon, `daemon-a` first, on one queue of 50 messages (5 replicas).
async fn pair(name: &str) -> Pair {
    let mut redis = test_redis::connect().await;
    let queue = unique(name);
    push(&mut redis, &queue, &queue, 50).await;
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    let dir = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port());
    let start = |port, token: &str| {
        let kubeconfig = api.kubeconfig_with_token(dir.path(), token);
        let config = config(
            &test_redis::url(),
            &queue,
            port,
            10,
            &format!("admin_details = true\nkube_timeout = \"1s\"\n{LEADER_ELECTION}"),
        );
        Daemon::start(
            &config,
            &["run"],
            Some(&kubeconfig),
            &[("POD_NAME", &format!("daemon-{token}")), ("RUST_LOG", "info")],
        )
    };
    let a = start(ports.0, "a");
    eventually(WAIT, "daemon-a holding the lease", || (holder(&api).as_deref() == Some("daemon-a")).then_some(()))
        .await;
    let b = start(ports.1, "b");
    Pair { api, a, b, ports, queue, _dir: dir }
}

/// Someone keeps setting the Deployment back to 1 replica, so that the leader keeps writing.
async fn interfere_until(api: &ApiServer, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        api.set_replicas("data", "worker", 1);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_and_a_standby_takes_over_when_it_dies() {
    let mut pair = pair("ha-kill").await;
    let api = &pair.api;
    eventually(WAIT, "the leader's scale-up", || (api.replicas("data", "worker") == 5).then_some(())).await;
    eventually(WAIT, "the standby's first cycle", || {
        http_get(pair.ports.1, "/readyz").filter(|(code, _)| *code == 200).map(|(_, body)| body)
    })
    .await;
    let (_, standby) = http_get(pair.ports.1, "/readyz").unwrap();
    assert_eq!(standby, "ready: standby (leader: daemon-a)\n");
    assert_eq!(http_get(pair.ports.0, "/readyz").unwrap().1, "ready: leader\n");
    let leader_metric = |port| metric(&http_get(port, "/metrics").expect("metrics").1, "queue_autoscaler_leader");
    assert_eq!(leader_metric(pair.ports.0), 1.0);
    assert_eq!(leader_metric(pair.ports.1), 0.0);

    // The leader keeps correcting someone else's writes; the standby never writes.
    let writes_before = api.scale_writes().len();
    interfere_until(api, "three corrections by the leader", || api.scale_writes().len() >= writes_before + 3).await;
    assert_eq!(writer_runs(api), vec!["a"], "only the leader writes");

    // The leader dies without releasing the lease: the standby takes over once it expires.
    pair.a.kill();
    let killed = Instant::now();
    eventually(WAIT, "daemon-b holding the lease", || (holder(api).as_deref() == Some("daemon-b")).then_some(())).await;
    // client-go's rule (`tryAcquireOrRenew`): the lease expires lease_duration (3 s) after the
    // standby last SAW it change, by its own clock. a renewed at most one retry_period (500 ms)
    // before dying, and b sees a change within one retry_period: so never before 2.5 s (b must not
    // steal a live lease), and due by 3 s + 2 × 500 ms. The upper bound has 3 s more for a loaded
    // machine: lateness is not what this test is about, stealing is.
    let takeover = killed.elapsed();
    assert!(takeover >= Duration::from_millis(2500), "took over in {takeover:?}: before the 3 s lease could expire");
    assert!(takeover < Duration::from_secs(7), "took over in {takeover:?} (lease 3 s, retry 500 ms)");
    interfere_until(api, "a write by the new leader", || writer_runs(api).len() == 2).await;
    assert_eq!(writer_runs(api), vec!["a", "b"], "never both: all of a's writes, then b's; log b:\n{}", pair.b.log());
    let lease = api.lease("ops", "queue-autoscaler").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(http_get(pair.ports.1, "/readyz").unwrap().1, "ready: leader\n");
    let mut redis = test_redis::connect().await;
    let () = redis::cmd("DEL").arg(&pair.queue).query_async(&mut redis).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopping_cleanly_releases_the_lease_at_once() {
    let mut pair = pair("ha-term").await;
    eventually(WAIT, "the standby's first cycle", || http_get(pair.ports.1, "/readyz").filter(|(c, _)| *c == 200))
        .await;
    let (status, _) = pair.a.terminate();
    assert!(status.success());
    let stopped = Instant::now();
    eventually(WAIT, "daemon-b holding the lease", || (holder(&pair.api).as_deref() == Some("daemon-b")).then_some(()))
        .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "released: no need to wait out the 3 s lease ({:?})",
        stopped.elapsed()
    );
    assert!(pair.a.log().contains("released the lease"), "{}", pair.a.log());
    let mut redis = test_redis::connect().await;
    let () = redis::cmd("DEL").arg(&pair.queue).query_async(&mut redis).await.unwrap();
}

/// Writes `text` as `dir/NAME` and points `dir/config.toml` at it by an atomic symlink swap, the
/// way the kubelet updates a mounted ConfigMap.
/// The ids of the clients connected to a private Redis, but the asker's own.
async fn client_ids(connection: &mut redis::aio::MultiplexedConnection) -> Vec<u64> {
    let me: u64 = redis::cmd("CLIENT").arg("ID").query_async(connection).await.unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(connection).await.unwrap();
    list.lines()
        .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("id=")).and_then(|id| id.parse().ok()))
        .filter(|id| *id != me)
        .collect()
}

fn run_with_symlinked_config(api: &ApiServer, dir: &Path, first: &str) -> Daemon {
    swap_config(dir, "config-v1.toml", first);
    let kubeconfig = api.kubeconfig(dir);
    Daemon::start_with_config_path(&dir.join("config.toml"), &["run"], Some(&kubeconfig), &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_takes_effect_and_an_invalid_one_is_rejected() {
    let redis_port = free_port();
    let private = PrivateRedis::start(redis_port, &[]);
    let redis_url = format!("redis://127.0.0.1:{}/0", private.port);
    let mut redis = redis::Client::open(redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    push(&mut redis, "jobs", "jobs", 100).await;
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let reload = "config_check_interval = \"1s\"";
    let daemon = run_with_symlinked_config(&api, dir.path(), &config(&redis_url, "jobs", port, 3, reload));
    eventually(WAIT, "the first bound", || (api.replicas("data", "worker") == 3).then_some(())).await;
    let clients = client_ids(&mut redis).await;
    assert_eq!(clients.len(), 1, "the daemon's one connection: {clients:?}");

    swap_config(dir.path(), "config-v2.toml", &config(&redis_url, "jobs", port, 5, reload));
    eventually(WAIT, "the new bound", || (api.replicas("data", "worker") == 5).then_some(())).await;
    assert_eq!(client_ids(&mut redis).await, clients, "the unchanged source kept its connection");

    swap_config(
        dir.path(),
        "config-v3.toml",
        &config(&redis_url, "jobs", port, 5, reload).replace("max_replicas = 5", "max_replicas = \"five\""),
    );
    eventually(WAIT, "the rejection", || daemon.log().contains("config reload rejected").then_some(())).await;
    assert!(daemon.log().contains("targets[0].max_replicas"), "the key path is logged:\n{}", daemon.log());
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(metric(&metrics, "queue_autoscaler_config_reload_errors_total"), 1.0);
    assert_eq!(metric(&metrics, "queue_autoscaler_config_reloads_total"), 1.0);
    // The old config keeps running: a Deployment set back is restored to 5.
    api.set_replicas("data", "worker", 2);
    eventually(WAIT, "the running config at work", || (api.replicas("data", "worker") == 5).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_at_once() {
    let mut scenario = Scenario::new("sighup", 1).await;
    scenario.push(100).await;
    let Scenario { queue, api, dir, .. } = &scenario;
    let port = free_port();
    let never = "config_check_interval = \"1h\"";
    let daemon = run_with_symlinked_config(api, dir.path(), &config(&test_redis::url(), queue, port, 3, never));
    eventually(WAIT, "the first bound", || (api.replicas("data", "worker") == 3).then_some(())).await;
    swap_config(dir.path(), "config-v2.toml", &config(&test_redis::url(), queue, port, 4, never));
    cycles_pass(port, 2).await;
    assert_eq!(api.replicas("data", "worker"), 3, "no check for an hour: nothing yet");
    daemon.signal("HUP");
    eventually(WAIT, "the reload on SIGHUP", || (api.replicas("data", "worker") == 4).then_some(())).await;
    scenario.drain().await;
}
