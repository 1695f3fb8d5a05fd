//! The fault suite: the real binary against the test API server misbehaving as a real one can
//! (409 with another writer's change, 429, 500, failed reads), each scenario asserting exactly
//! what was written — the request sequence — and that nothing wrong was.
//!
//! "Never writes" checks wait for cycles to pass (`queue_autoscaler_loop_seconds_count`), not for
//! a fixed time.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::airflow::Schema;
use support::apiserver::{Calls, Change, Request};
use support::daemon::{Daemon, LEADER_ELECTION, cycles, cycles_pass, free_port, http_get, swap_config};
use support::eventually;
use support::redis::{self as test_redis, PrivateRedis};
use support::scenario::{AirflowWorkers, Scenario};
use support::toml::Toml;

const WAIT: Duration = Duration::from_secs(20);
const PAUSED: &str = "queue-autoscaler.io/paused";
const COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// `LEADER_ELECTION`'s lease: another replica may take over this long after the last renewal.
const LEASE: Duration = Duration::from_secs(3);
/// A recovery is due within one interval (1 s) and one poll's timeout (1 s) of the fault
/// clearing, with a second to spare on a loaded machine.
const RECOVERY: Duration = Duration::from_secs(3);

/// One Celery source on `queue`, one target on data/worker (10 per replica, `min`..=10), 1 s
/// polls and 1 s Kubernetes timeout; `daemon` is added to `[daemon]`; with `no_window`, the
/// target scales down at once.
fn config(queue: &str, port: u16, min: u32, daemon: &str, no_window: bool) -> String {
    let toml = Toml::daemon(port)
        .raw("kube_timeout = \"1s\"")
        .raw(daemon)
        .celery("jobs", queue)
        .raw("timeout = \"1s\"")
        .target("workers", "data", "worker")
        .bounds(min, 10)
        .per_replica("jobs", 10)
        .scale_up_pods(10);
    if no_window { toml.scale_down_at_once() } else { toml }.render()
}

/// The HPA's default scale-down window (300 s): longer than any test.
const WINDOW: bool = false;
/// No scale-down window, so that scale-downs happen at once.
const NO_WINDOW: bool = true;

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

    fn daemon(&self, min: u32, daemon: &str, no_window: bool) -> Daemon {
        let config = config(&self.queue, self.port, min, daemon, no_window);
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

    /// The daemon with its source on `redis_url` instead of the shared Redis.
    fn daemon_on(&self, redis_url: &str, min: u32, no_window: bool) -> Daemon {
        let config = config(&self.queue, self.port, min, "", no_window).replace(&test_redis::url(), redis_url);
        Daemon::start(&config, &["run"], Some(&self.api.kubeconfig(self.dir.path())), &[("RUST_LOG", "info")])
    }

    /// For `n` cycles, someone keeps setting data/worker back to 1 (and calls `meanwhile`), so
    /// that a leader wants to write at every cycle.
    async fn set_back_for(&self, n: u64, mut meanwhile: impl FnMut()) {
        let until = cycles(self.port).unwrap_or(0) + n;
        let deadline = Instant::now() + WAIT + Duration::from_secs(n);
        while cycles(self.port).unwrap_or(0) < until {
            assert!(Instant::now() < deadline, "timed out waiting for {n} cycles");
            self.api.set_replicas("data", "worker", 1);
            meanwhile();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Scale writes that reached the server after `instant`.
    fn scale_writes_after(&self, instant: Instant) -> Vec<Request> {
        let writes = self.api.requests_to(&Calls::patch("deployments/scale").of("worker"));
        writes.into_iter().filter(|r| r.at > instant).collect()
    }
}

/// The sum of the series of the counter `name` on the daemon's `/metrics` whose labels contain
/// `labels`.
fn counted(port: u16, name: &str, labels: &str) -> f64 {
    let (_, page) = http_get(port, "/metrics").expect("metrics");
    let series = page.lines().filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels));
    series.filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
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
    let daemon = setup.daemon(1, "", WINDOW);
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
    let daemon = setup.daemon(1, "", WINDOW);
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
    let daemon = setup.daemon(1, "", WINDOW);
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
    let _daemon = setup.daemon(1, "", WINDOW);
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
        &config(&setup.queue, free_port(), 1, &election, WINDOW),
        &["run"],
        Some(&setup.api.kubeconfig_with_token(setup.dir.path(), "a")),
        &[("POD_NAME", "daemon-a")],
    );
    let holder = || setup.api.lease("ops", "queue-autoscaler")?["spec"]["holderIdentity"].as_str().map(str::to_owned);
    eventually(WAIT, "daemon-a holding the lease", || (holder().as_deref() == Some("daemon-a")).then_some(())).await;
    eventually(WAIT, "daemon-a's scale-up", || setup.replicas_are(3)).await;

    // daemon-b would size differently (30 messages at 8 each: 4), so a write by it would show.
    let b_config = |daemon: &str| {
        config(&setup.queue, setup.port, 1, daemon, WINDOW).replace("per_replica = 10", "per_replica = 8")
    };
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
    let good = config(&setup.queue, setup.port, 1, "config_check_interval = \"1s\"", WINDOW);
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
    let mut daemon = setup.daemon(1, LEADER_ELECTION, WINDOW);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_event_writes_leave_the_rescales_standing() {
    let mut setup = Setup::new("faults-event-fail", 1).await;
    // The first rescale's Event is answered 500, the second's 429.
    setup.api.next(1, Calls::create("events")).fail(500);
    setup.api.next(1, Calls::create("events")).throttle(Duration::from_secs(1));
    setup.push(30).await;
    let daemon = setup.daemon(1, "", WINDOW);
    eventually(WAIT, "a scale-up to 3", || setup.replicas_are(3)).await;
    setup.push(20).await;
    eventually(WAIT, "a scale-up to 5", || setup.replicas_are(5)).await;
    setup.cycles(3).await;
    assert_eq!(setup.written(), [3, 5], "each rescale written once, none undone or repeated; log:\n{}", daemon.log());
    let events: Vec<u16> = setup.api.requests_to(&Calls::create("events")).iter().map(|r| r.status).collect();
    assert_eq!(events, [500, 429], "one Event per rescale, not sent again");
    assert_eq!(daemon.log().matches("could not record the Event").count(), 2, "log:\n{}", daemon.log());
    // Both answers are API errors; a read timing out on a loaded machine would count as transport.
    let errors = counted(setup.port, "queue_autoscaler_target_errors_total", "error=\"api\"");
    assert_eq!(errors, 2.0, "both failures counted; log:\n{}", daemon.log());
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pod_list_holds_the_scale_down_of_a_protected_target() {
    // At 4 with no tasks: 1 wanted, but which pods are busy cannot be learned.
    let workers = AirflowWorkers::new("faults_pod_list", 4).await;
    workers.api.every(Calls::list("pods")).fail(500);
    let daemon = workers.daemon(None);
    eventually(WAIT, "the held scale-down", || {
        daemon.log().contains("scale-down held: which workers are busy is unknown").then_some(())
    })
    .await;
    cycles_pass(workers.port, 2).await;
    assert!(workers.api.scale_writes().is_empty(), "{:?}; log:\n{}", workers.api.scale_writes(), daemon.log());
    assert!(workers.api.pod_patches().is_empty());
    let errors = counted(workers.port, "queue_autoscaler_target_errors_total", "error=\"api\"");
    assert!(errors >= 2.0, "each failed list counted: {errors}");
    workers.api.clear_faults();
    eventually(RECOVERY, "the scale-down once pods can be listed", || workers.replicas_are(1)).await;
    assert_eq!(workers.api.scale_writes().iter().map(|w| w.replicas).collect::<Vec<_>>(), [1]);
    workers.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deletion_cost_holds_the_scale_down_until_it_is_set() {
    // At 5, two tasks running on worker-1 and worker-3: 1 wanted, the busy floor keeps 2.
    let workers = AirflowWorkers::new("faults_cost", 5).await;
    let running = [
        (Some("running"), Some("default"), None, Some("worker-1")),
        (Some("running"), Some("default"), None, Some("worker-3")),
    ];
    workers.db.insert(Schema::V2_10, &running).await;
    workers.api.next(1, Calls::patch("pods").of("worker-1")).fail(500);
    let daemon = workers.daemon(None);
    eventually(WAIT, "the scale-down to the busy pods", || workers.replicas_are(2)).await;
    // The ReplicaSet would remove worker-1 with its task if the scale-down went ahead while
    // worker-1 still cost 0: the write waits for the cost.
    let calls: Vec<String> = workers
        .api
        .requests()
        .iter()
        .filter(|r| r.is(&Calls::patch("pods")) || r.is(&Calls::patch("deployments/scale")))
        .map(describe)
        .collect();
    assert_eq!(
        calls,
        strings(&[
            "PATCH worker-1 500",
            "PATCH worker-3 200",
            "PATCH worker-1 200",
            "PATCH worker/scale 200 replicas=2"
        ]),
        "log:\n{}",
        daemon.log()
    );
    assert_eq!(workers.api.pod_annotations("airflow", "worker-1")[COST], "1000");
    assert_eq!(workers.api.pod_annotations("airflow", "worker-3")[COST], "1000");
    assert!(daemon.log().contains("could not set the pod deletion cost"), "log:\n{}", daemon.log());
    workers.drop_database().await;
}

/// A leader at 3 whose Lease calls then meet `fault`: it writes nothing once the lease could
/// have passed to another replica (no renewal within `renew_deadline`, 2 s, and a write landing
/// within `kube_timeout`, 1 s), and writes again once it can renew.
async fn a_leader_stops_writing_when(name: &str, fault: impl FnOnce(&Setup)) {
    let mut setup = Setup::new(name, 1).await;
    setup.push(30).await;
    let daemon = setup.daemon(1, LEADER_ELECTION, WINDOW);
    eventually(WAIT, "the leader's scale-up", || setup.replicas_are(3)).await;
    let faulted = Instant::now();
    fault(&setup);
    setup.set_back_for(6, || {}).await;
    assert!(daemon.log().contains("lost the lease"), "log:\n{}", daemon.log());
    let late = setup.scale_writes_after(faulted + LEASE);
    assert!(late.is_empty(), "written without the lease: {late:?}; log:\n{}", daemon.log());
    setup.api.clear_faults();
    eventually(WAIT, "the writes once the lease is renewed again", || setup.replicas_are(3)).await;
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_reads_fail_stops_writing_within_the_renew_deadline() {
    a_leader_stops_writing_when("faults-lease-get", |setup| setup.api.every(Calls::get("leases")).fail(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_writes_time_out_stops_writing_within_the_renew_deadline() {
    // Taken at once but answered after the 1 s kube_timeout: the renewal cannot be counted.
    let slow = |setup: &Setup| setup.api.every(Calls::update("leases")).answer_after(Duration::from_secs(3));
    a_leader_stops_writing_when("faults-lease-put", slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_by_another_holder_stops_the_writes_at_once() {
    let mut setup = Setup::new("faults-lease-taken", 1).await;
    setup.push(30).await;
    let daemon = setup.daemon(1, LEADER_ELECTION, WINDOW);
    eventually(WAIT, "the leader's scale-up", || setup.replicas_are(3)).await;
    // Another identity takes the Lease and keeps renewing it.
    let taken = Instant::now();
    let mut renewals = 0;
    let mut renew = || {
        renewals += 1;
        let renew_time = format!("2026-12-04T10:00:{:02}.000000Z", renewals % 60);
        let spec = json!({ "spec": { "holderIdentity": "intruder", "renewTime": renew_time } });
        setup.api.change_lease("ops", "queue-autoscaler", Change::merge(spec));
    };
    renew();
    setup.set_back_for(5, renew).await;
    // The daemon sees the intruder when its next read of the Lease is answered; a write it had
    // started just before arrives within milliseconds (100 ms allowed for a loaded machine).
    let reads = setup.api.requests_to(&Calls::get("leases"));
    let read = reads.iter().find(|r| r.at > taken).expect("the daemon reads the Lease");
    let seen = read.at + read.answered_after + Duration::from_millis(100);
    let late = setup.scale_writes_after(seen);
    assert!(late.is_empty(), "written after the intruder was seen: {late:?}; log:\n{}", daemon.log());
    let renewed = setup.api.requests_to(&Calls::update("leases"));
    assert!(renewed.iter().all(|r| r.at < taken || !r.succeeded()), "the intruder's valid lease is respected");
    let holder = &setup.api.lease("ops", "queue-autoscaler").expect("the Lease")["spec"]["holderIdentity"];
    assert_eq!(holder, "intruder");
    setup.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_slower_than_its_timeout_never_scales_down_and_recovers() {
    // At 6 with an empty queue on a Redis that hangs: 1 would be wanted, if it were known.
    let setup = Setup::new("faults-source-slow", 6).await;
    let redis = PrivateRedis::start(free_port(), &[]);
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    redis.pause();
    let daemon = setup.daemon_on(&url, 1, NO_WINDOW);
    setup.cycles(3).await;
    assert!(setup.api.scale_writes().is_empty(), "{:?}; log:\n{}", setup.api.scale_writes(), daemon.log());
    let errors = counted(setup.port, "queue_autoscaler_source_errors_total", "source=\"jobs\"");
    assert!(errors >= 3.0, "each timed-out poll counted: {errors}; log:\n{}", daemon.log());
    assert!(daemon.log().contains("timed out"), "log:\n{}", daemon.log());
    redis.resume();
    eventually(RECOVERY, "the scale-down once Redis answers", || setup.replicas_are(1)).await;

    // Hanging again, on the connection now open: someone sets 4, which stays while unknown.
    redis.pause();
    setup.api.set_replicas("data", "worker", 4);
    setup.cycles(3).await;
    assert_eq!(setup.written(), [1], "log:\n{}", daemon.log());
    let again = counted(setup.port, "queue_autoscaler_source_errors_total", "source=\"jobs\"");
    assert!(again >= errors + 3.0, "the polls on the hung connection counted: {again}; log:\n{}", daemon.log());
    redis.resume();
    eventually(RECOVERY, "the scale-down once Redis answers again", || setup.replicas_are(1)).await;
    assert_eq!(setup.written(), [1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_answering_garbage_never_scales_down_and_recovers() {
    // At 6, the queue's key is a string: LLEN answers WRONGTYPE, nothing says the queue is empty.
    let mut setup = Setup::new("faults-source-garbage", 6).await;
    let () = redis::cmd("SET").arg(&setup.queue).arg("garbage").query_async(&mut setup.scenario.redis).await.unwrap();
    let daemon = setup.daemon(1, "", NO_WINDOW);
    setup.cycles(3).await;
    assert!(setup.api.scale_writes().is_empty(), "{:?}; log:\n{}", setup.api.scale_writes(), daemon.log());
    let errors = counted(setup.port, "queue_autoscaler_source_errors_total", "source=\"jobs\"");
    assert!(errors >= 3.0, "each failed poll counted: {errors}; log:\n{}", daemon.log());
    setup.drain().await;
    eventually(RECOVERY, "the scale-down once the queue reads empty", || setup.replicas_are(1)).await;
    assert_eq!(setup.written(), [1]);
}
