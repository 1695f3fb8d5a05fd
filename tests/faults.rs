//! The fault suite: the real binary against the test API server misbehaving as a real one can
//! (409 with another writer's change, 429, 500, failed reads), each scenario asserting exactly
//! what was written — the request sequence — and that nothing wrong was.
//!
//! "Never writes" checks wait for cycles to pass (`queue_autoscaler_loop_seconds_count`), not for
//! a fixed time.

mod support;

use std::time::Duration;

use support::apiserver::{Calls, Change, Request};
use support::daemon::{Daemon, LEADER_ELECTION, cycles_pass, free_port, swap_config};
use support::eventually;
use support::redis as test_redis;
use support::scenario::Scenario;

const WAIT: Duration = Duration::from_secs(20);
const PAUSED: &str = "queue-autoscaler.io/paused";

/// One Celery source on `queue`, one target on data/worker (10 per replica, `min`..=10), 1 s
/// polls and 1 s Kubernetes timeout; `extra` is appended (a [targets.scale_down], a daemon key
/// is not possible after it).
fn config(queue: &str, port: u16, min: u32, daemon: &str, extra: &str) -> String {
    format!(
        r#"
[daemon]
interval = "1s"
listen = "127.0.0.1:{port}"
kube_timeout = "1s"
{daemon}

[sources.jobs]
kind = "celery"
url = "{redis}"
queues = ["{queue}"]
timeout = "1s"

[[targets]]
name = "workers"
namespace = "data"
deployment = "worker"
min_replicas = {min}
max_replicas = 10
triggers = [{{ source = "jobs", per_replica = 10 }}]

[targets.scale_up]
policies = [{{ type = "pods", value = 10, period = "500ms" }}]
{extra}
"#,
        redis = test_redis::url()
    )
}

/// No scale-down window, so that scale-downs happen at once.
const NO_WINDOW: &str = "[targets.scale_down]\nstabilization = \"0s\"\npolicies = [{ type = \"percent\", value = 100, period = \"500ms\" }]";

/// A scenario, and the admin port its daemon listens on.
struct Setup {
    scenario: Scenario,
    port: u16,
}

impl std::ops::Deref for Setup {
    type Target = Scenario;
    fn deref(&self) -> &Scenario {
        &self.scenario
    }
}

impl Setup {
    async fn new(name: &str, replicas: i64) -> Setup {
        Setup { scenario: Scenario::new(name, replicas).await, port: free_port() }
    }

    fn daemon(&self, min: u32, daemon: &str, extra: &str) -> Daemon {
        let config = config(&self.queue, self.port, min, daemon, extra);
        Daemon::start(&config, &["run"], Some(&self.api.kubeconfig(self.dir.path())), &[("RUST_LOG", "info")])
    }

    async fn push(&mut self, n: usize) {
        self.scenario.push(n).await;
    }

    async fn drain(&mut self) {
        self.scenario.drain().await;
    }

    /// The reads and writes of data/worker, in order: `GET worker 200`, `PATCH worker/scale 409`, ….
    fn worker_calls(&self) -> Vec<String> {
        let calls = [Calls::any("deployments").of("worker"), Calls::any("deployments/scale").of("worker")];
        let requests = self.api.requests();
        let mine = requests.iter().filter(|r| calls.iter().any(|c| r.is(c)));
        mine.map(describe).collect()
    }

    /// Waits until `n` more cycles have finished than had when called.
    async fn cycles(&self, n: u64) {
        cycles_pass(self.port, n).await;
    }
}

/// `GET worker 200`, `PATCH worker/scale 409 replicas=3`.
fn describe(r: &Request) -> String {
    let scale = if r.resource.ends_with("/scale") { "/scale" } else { "" };
    let name = r.name.as_deref().unwrap_or_default();
    let to = r.body["spec"]["replicas"].as_i64().map(|n| format!(" replicas={n}")).unwrap_or_default();
    format!("{} {name}{scale} {}{to}", r.method, r.status)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_means_read_and_plan_again_never_the_old_number() {
    let mut setup = Setup::new("faults-409", 1).await;
    setup.api.inject_conflicts(2);
    setup.push(30).await;
    let daemon = setup.daemon(1, "", "");
    eventually(WAIT, "the scale-up despite two conflicts", || setup.replicas_are(3)).await;
    let calls = setup.worker_calls();
    assert_eq!(
        calls[..6],
        strings(&[
            "GET worker 200",
            "PATCH worker/scale 409 replicas=3",
            "GET worker 200",
            "PATCH worker/scale 409 replicas=3",
            "GET worker 200",
            "PATCH worker/scale 200 replicas=3",
        ]),
        "log:\n{}",
        daemon.log()
    );
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_that_paused_the_deployment_stops_the_write() {
    let mut setup = Setup::new("faults-409-pause", 3).await;
    // Another writer sets 5 replicas and pauses the Deployment just as the scale-down is sent.
    let change = Change::to_replicas(5).annotate(PAUSED, "true");
    setup.api.next(1, Calls::patch("deployments/scale").of("worker")).conflict(change);
    let daemon = setup.daemon(0, "", NO_WINDOW);
    eventually(WAIT, "the conflicting write", || (setup.api.faults_pending() == 0).then_some(())).await;
    setup.cycles(3).await;
    assert_eq!(setup.api.replicas("data", "worker"), 5, "log:\n{}", daemon.log());
    assert!(setup.api.scale_writes().is_empty(), "{:?}", setup.api.scale_writes());
    let calls = setup.worker_calls();
    assert_eq!(calls[..2], strings(&["GET worker 200", "PATCH worker/scale 409 replicas=1"]));
    assert!(calls[2..].iter().all(|c| c == "GET worker 200"), "only reads after the pause: {calls:?}");
    assert!(!daemon.log().contains("rescaled"), "log:\n{}", daemon.log());
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_first_read_keeps_the_start_up_hold() {
    // At 8 with an empty queue and the HPA's 300 s scale-down window: the first cycles hold 8.
    let setup = Setup::new("faults-first-read", 8).await;
    setup.api.next(1, Calls::get("deployments").of("worker")).fail(500);
    let daemon = setup.daemon(1, "", "");
    setup.cycles(4).await;
    assert_eq!(setup.api.faults_pending(), 0, "the first read failed");
    assert!(setup.api.scale_writes().is_empty(), "{:?}; log:\n{}", setup.api.scale_writes(), daemon.log());
    assert_eq!(setup.api.replicas("data", "worker"), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_or_500_fails_the_cycle_and_the_next_one_recovers() {
    let mut setup = Setup::new("faults-429", 1).await;
    setup.push(30).await;
    // kube-client's default retry would wait out Retry-After (30 s) up to 15 times.
    setup.api.every(Calls::patch("deployments/scale")).throttle(Duration::from_secs(30));
    let daemon = setup.daemon(1, "", "");
    setup.cycles(3).await;
    assert!(setup.api.scale_writes().is_empty());
    setup.api.clear_faults();
    setup.api.next(1, Calls::patch("deployments/scale")).fail(500);
    eventually(WAIT, "the write once the API server answers", || setup.replicas_are(3)).await;
    let patches: Vec<u16> =
        setup.api.requests_to(&Calls::patch("deployments/scale")).iter().map(|r| r.status).collect();
    assert!(patches.len() >= 4, "{patches:?}");
    assert!(patches[..patches.len() - 2].iter().all(|s| *s == 429), "{patches:?}");
    assert_eq!(patches[patches.len() - 2..], [500, 200], "log:\n{}", daemon.log());
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rescale_has_an_event_with_its_own_size() {
    let mut setup = Setup::new("faults-events", 1).await;
    setup.push(30).await;
    let _daemon = setup.daemon(1, "", "");
    eventually(WAIT, "a scale-up to 3", || setup.replicas_are(3)).await;
    setup.push(20).await;
    eventually(WAIT, "a scale-up to 5", || setup.replicas_are(5)).await;
    let notes: Vec<String> = setup
        .api
        .events()
        .iter()
        .filter(|e| e["reason"] == "SuccessfulRescale")
        .filter_map(|e| e["note"].as_str().map(|n| n.split(';').next().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(notes, strings(&["New size: 3", "New size: 5"]));
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_turns_dry_run_off_waits_for_the_lease() {
    let mut setup = Setup::new("faults-dry-reload", 1).await;
    setup.push(30).await;
    let election = format!("config_check_interval = \"1s\"\n{LEADER_ELECTION}");
    let leader = Daemon::start(
        &config(&setup.queue, free_port(), 1, &election, ""),
        &["run"],
        Some(&setup.api.kubeconfig_with_token(setup.dir.path(), "a")),
        &[("POD_NAME", "daemon-a")],
    );
    let holder = || setup.api.lease("ops", "queue-autoscaler")?["spec"]["holderIdentity"].as_str().map(str::to_owned);
    eventually(WAIT, "daemon-a holding the lease", || (holder().as_deref() == Some("daemon-a")).then_some(())).await;
    eventually(WAIT, "daemon-a's scale-up", || setup.replicas_are(3)).await;

    // daemon-b would size differently (30 messages at 8 each: 4), so a write by it would show.
    let b_config =
        |daemon: &str| config(&setup.queue, setup.port, 1, daemon, "").replace("per_replica = 10", "per_replica = 8");
    let dir = setup.dir.path();
    swap_config(dir, "b-v1.toml", &b_config(&format!("dry_run = true\n{election}")));
    let kubeconfig = setup.api.kubeconfig_with_token(dir, "b");
    let standby = Daemon::start_with_config_path(
        &dir.join("config.toml"),
        &["run"],
        Some(&kubeconfig),
        &[("POD_NAME", "daemon-b"), ("RUST_LOG", "info")],
    );
    setup.cycles(2).await;
    swap_config(dir, "b-v2.toml", &b_config(&election));
    eventually(WAIT, "the reload", || standby.log().contains("config reloaded").then_some(())).await;
    setup.cycles(3).await;
    assert_eq!(setup.api.replicas("data", "worker"), 3, "daemon-b's 4 never written; b's log:\n{}", standby.log());
    let writers: Vec<String> = setup.api.scale_writes().iter().map(|w| w.token.clone().unwrap_or_default()).collect();
    assert!(writers.iter().all(|t| t == "a"), "only daemon-a writes: {writers:?}\nb's log:\n{}", standby.log());
    assert_eq!(holder().as_deref(), Some("daemon-a"));
    drop(leader);
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_slower_than_kube_timeout_fails_the_read_and_nothing_is_written() {
    let mut setup = Setup::new("faults-slow", 6).await;
    // Every read answered after 3 s, beyond the 1 s kube_timeout: the state is unknown.
    setup.api.every(Calls::get("deployments").of("worker")).answer_after(Duration::from_secs(3));
    let daemon = setup.daemon(1, "", NO_WINDOW);
    setup.cycles(3).await;
    assert!(setup.api.scale_writes().is_empty(), "{:?}; log:\n{}", setup.api.scale_writes(), daemon.log());
    assert!(daemon.log().contains("cannot read the Deployment"), "log:\n{}", daemon.log());
    // Recovery within an interval of the fault clearing: the empty queue takes it down (to 1,
    // never 6 → 0).
    setup.api.clear_faults();
    eventually(WAIT, "the scale-down once reads answer", || setup.replicas_are(1)).await;
    assert_eq!(setup.written(), [1]);
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_a_bad_file_keeps_the_running_config() {
    let mut setup = Setup::new("faults-bad-reload", 1).await;
    setup.push(30).await;
    let dir = setup.dir.path();
    let good = config(&setup.queue, setup.port, 1, "config_check_interval = \"1s\"", "");
    swap_config(dir, "v1.toml", &good);
    let kubeconfig = setup.api.kubeconfig(dir);
    let daemon = Daemon::start_with_config_path(&dir.join("config.toml"), &["run"], Some(&kubeconfig), &[]);
    eventually(WAIT, "the first scale-up", || setup.replicas_are(3)).await;
    let no_targets = good[..good.find("[[targets]]").unwrap()].to_owned();
    let half_written = good[..good.len() / 2].to_owned();
    for (name, text) in [("zero-targets.toml", no_targets), ("half.toml", half_written)] {
        let rejected = || daemon.log().matches("config reload rejected").count();
        let before = rejected();
        swap_config(dir, name, &text);
        eventually(WAIT, &format!("{name} rejected"), || (rejected() > before).then_some(())).await;
        // Still running the good config: a Deployment set back is restored.
        setup.api.set_replicas("data", "worker", 1);
        eventually(WAIT, &format!("the running config after {name}"), || setup.replicas_are(3)).await;
    }
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_write_releases_the_lease_only_after_the_cycle_ends() {
    let mut setup = Setup::new("faults-sigterm", 1).await;
    setup.push(30).await;
    // The scale write is taken at once but answered after 3 s: the daemon waits for it up to its
    // 1 s kube_timeout.
    setup.api.next(1, Calls::patch("deployments/scale")).answer_after(Duration::from_secs(3));
    let mut daemon = setup.daemon(1, LEADER_ELECTION, "");
    let patch = Calls::patch("deployments/scale").of("worker");
    eventually(WAIT, "the scale write in flight", || setup.api.requests_to(&patch).first().cloned()).await;
    // Handled (the server records a request as it takes it); its answer is still 3 s away.
    let written = setup.api.requests_to(&patch)[0].at;
    let (status, _) = daemon.terminate();
    assert!(status.success(), "log:\n{}", daemon.log());
    let releases = setup.api.requests_to(&Calls::update("leases"));
    let release = releases.iter().rev().find(|r| r.body["spec"]["holderIdentity"].is_null()).expect("a release");
    let after = release.at.duration_since(written);
    assert!(
        after >= Duration::from_millis(900),
        "released {after:?} after the write was sent, before the cycle in flight ended (bounded at 1 s); log:\n{}",
        daemon.log()
    );
    setup.drain().await;
}
