//! Celery's event stream (`events = true`) against real Celery 5 workers on a real Redis, each
//! started with `-E --hostname celery@<fake pod>`: busy workers, heartbeat expiry, exact rates,
//! kombu's channel naming, reconnection, and busy-aware scale-in end to end.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use queue_autoscaler::metrics::Metrics;
use queue_autoscaler::policy::load::{Fleet, Method, Tracker};
use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::celery::{CelerySettings, HostnamePattern, SubscriptionState};
use queue_autoscaler::source::{Kind, Reading, Settings, Shared, Source, SourceSpec};
use serde_json::Value;
use support::apiserver::ApiServer;
use support::celery_redis::{CeleryWorker, WorkerSpec, publish};
use support::daemon::{metric, run};
use support::redis::{self as test_redis, PrivateRedis};
use support::toml::Toml;
use support::unique;

/// Workers take seconds to start on a busy machine: every wait is generous.
const WAIT: Duration = Duration::from_secs(60);
const COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A test's own namespace on the shared Redis: its `global_keyprefix`, for queues and events.
struct Scope {
    broker: String,
    prefix: String,
    queue: &'static str,
}

impl Scope {
    fn new(name: &str) -> Scope {
        Scope { broker: test_redis::url(), prefix: format!("{}:", unique(name)), queue: "work" }
    }

    fn settings(&self) -> CelerySettings {
        let mut settings = CelerySettings::for_queues(&[self.queue]);
        settings.global_keyprefix = self.prefix.clone();
        settings.events = true;
        settings
    }

    /// A worker on the test's queue, with task events (`-E`) or without.
    fn worker(&self, hostname: &str, concurrency: u32, events: bool) -> CeleryWorker {
        self.start(self.queue, hostname, concurrency, events)
    }

    /// A worker with task events on `queue`.
    fn worker_on(&self, queue: &str, hostname: &str, concurrency: u32) -> CeleryWorker {
        self.start(queue, hostname, concurrency, true)
    }

    fn start(&self, queue: &str, hostname: &str, concurrency: u32, events: bool) -> CeleryWorker {
        let (broker, prefix) = (self.broker.as_str(), self.prefix.as_str());
        CeleryWorker::start(&WorkerSpec { broker, prefix, queue, hostname, concurrency, heartbeat: 1.0, events })
    }

    fn publish(&self, seconds: f64, count: u32, per_second: Option<f64>) {
        publish(&self.broker, &self.prefix, self.queue, seconds, count, per_second);
    }

    async fn clean(&self) {
        test_redis::clean(&mut test_redis::connect().await, &self.prefix).await;
    }
}

fn source(url: &str, settings: CelerySettings, shared: &mut Shared) -> Source {
    let spec = SourceSpec {
        url: Some(SecretUrl::new(url)),
        timeout: Duration::from_secs(2),
        settings: Settings::Celery(settings),
    };
    Source::with_shared(&spec, shared).expect("source")
}

/// Checks every 100 ms until `check` gives a value; fails after [`WAIT`], saying what it waited for.
async fn until<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn busy(source: &Source) -> Option<BTreeMap<String, u32>> {
    source.busy_hosts().await.expect("a celery source with events knows busy hosts").ok()
}

/// Polls until the subscription has settled with `workers` workers heard.
async fn heard(source: &Source, workers: u32) -> Reading {
    until(&format!("{workers} worker(s) heard"), || async {
        let reading = source.poll().await.ok()?;
        let events = reading.events?;
        (events.subscription == SubscriptionState::Settled && events.workers == workers).then_some(reading)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_tasks_make_the_active_counts_right() {
    let scope = Scope::new("events-busy");
    let pods = [unique("pod-a"), unique("pod-b")];
    let _workers: Vec<_> = pods.iter().map(|p| scope.worker(&format!("celery@{p}"), 2, true)).collect();
    let source = source(&scope.broker, scope.settings(), &mut Shared::default());
    heard(&source, 2).await;
    assert_eq!(busy(&source).await, Some(BTreeMap::new()), "idle workers are not busy");

    scope.publish(600.0, 3, None);
    let busy =
        until("3 tasks running", || async { busy(&source).await.filter(|b| b.values().sum::<u32>() == 3) }).await;
    // Two slots per worker: one runs two tasks and the other one, whichever took them.
    let mut counts: Vec<u32> = busy.values().copied().collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2], "{busy:?}");
    assert_eq!(busy.keys().cloned().collect::<Vec<_>>(), { pods.to_vec() }, "keyed by pod name");

    let reading = until("the reading to agree", || async {
        source.poll().await.ok().filter(|r| r.load.in_flight == Some(3.0) && r.value == 0.0)
    })
    .await;
    let events = reading.events.expect("events status");
    assert_eq!((events.workers, events.sending, events.silent, events.counted), (2, 2, 0, true), "{events:?}");
    let metrics = Metrics::install();
    metrics.source_polled("events-busy", Kind::Celery, &Ok(reading), Duration::ZERO, false);
    let series = "queue_autoscaler_celery_event_workers{source=\"events-busy\"}";
    assert_eq!(metric(&metrics.render(), series), 2.0);
    scope.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_drops_out_after_two_heartbeat_intervals() {
    let scope = Scope::new("events-gone");
    let pod = unique("pod");
    let mut worker = scope.worker(&format!("celery@{pod}"), 1, true);
    let source = source(&scope.broker, scope.settings(), &mut Shared::default());
    heard(&source, 1).await;
    scope.publish(600.0, 1, None);
    until("the task running", || async { busy(&source).await.filter(|b| b.get(&pod) == Some(&1)) }).await;
    worker.check();

    let killed = Instant::now();
    worker.kill();
    let error = until("the killed worker forgotten", || async {
        source.busy_hosts().await.expect("supported").err().map(|e| e.to_string())
    })
    .await;
    let took = killed.elapsed();
    assert!(error.contains("no Celery worker named like `celery@{pod}` is heard"), "{error}");
    // Heard at most one interval (1 s) before the kill, gone 2 intervals after that.
    assert!(took >= Duration::from_millis(900), "forgotten before its heartbeats were due: {took:?}");
    assert!(took < Duration::from_secs(5), "kept long after 2 × 1 s without heartbeats: {took:?}");
    scope.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_read_back_within_a_fifth_of_the_known_pace() {
    const TASKS: u32 = 60;
    const PACE: f64 = 10.0;
    const RUNTIME: f64 = 0.2;
    let scope = Scope::new("events-rates");
    let _worker = scope.worker(&format!("celery@{}", unique("pod")), 4, true);
    let source = source(&scope.broker, scope.settings(), &mut Shared::default());
    heard(&source, 1).await;

    let publisher = {
        let (broker, prefix, queue) = (scope.broker.clone(), scope.prefix.clone(), scope.queue);
        tokio::task::spawn_blocking(move || publish(&broker, &prefix, queue, RUNTIME, TASKS, Some(PACE)))
    };
    // The counters at each poll while tasks arrive; the objective's estimator fed with them.
    let (started, mut tracker, mut seen) = (Instant::now(), Tracker::new(), Vec::new());
    let fleet = Fleet { ready: 1, slots: 4, prior_task_seconds: Some(1.0) };
    let mut method = None;
    while !publisher.is_finished() {
        let reading = source.poll().await.expect("poll");
        let load = reading.load;
        let arrived = load.arrived.expect("counted while every worker sends events");
        if arrived > 0 {
            let at = started.elapsed();
            seen.push((at, arrived, load.completed.expect("completions counted")));
            method = Some(tracker.observe(load, fleet, at).method);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    publisher.await.expect("publisher");
    assert!(seen.len() >= 4, "too few polls while the tasks arrived: {seen:?}");
    let ((t0, a0, c0), (t1, a1, c1)) = (seen[0], seen[seen.len() - 1]);
    let per_second = |n: u64| n as f64 / (t1 - t0).as_secs_f64();
    let (arrivals, completions) = (per_second(a1 - a0), per_second(c1 - c0));
    assert!((arrivals - PACE).abs() <= PACE / 5.0, "arrivals {arrivals}/s against {PACE}/s: {seen:?}");
    assert!((completions - PACE).abs() <= PACE / 5.0, "completions {completions}/s against {PACE}/s: {seen:?}");
    assert_eq!(method, Some(Method::Counted), "the objective counts arrivals instead of estimating them");

    // Once everything has run, the counters are exact.
    let reading = until("every task finished", || async {
        source.poll().await.ok().filter(|r| r.load.completed == Some(u64::from(TASKS)))
    })
    .await;
    assert_eq!(reading.load.arrived, Some(u64::from(TASKS)), "{:?}", reading.load);
    let runtimes = reading.load.runtimes.expect("runtimes");
    assert_eq!(runtimes.tasks, u64::from(TASKS));
    let mean = runtimes.seconds / runtimes.tasks as f64;
    assert!((RUNTIME..RUNTIME * 1.5).contains(&mean), "mean runtime {mean}s of tasks sleeping {RUNTIME}s");
    scope.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_without_task_events_are_reported_and_the_rates_fall_back_to_depth() {
    let scope = Scope::new("events-silent");
    let _worker = scope.worker(&format!("celery@{}", unique("pod")), 1, false);
    let source = source(&scope.broker, scope.settings(), &mut Shared::default());
    heard(&source, 1).await;
    scope.publish(0.1, 2, None);
    let reading = until("the worker seen running tasks without task events", || async {
        source.poll().await.ok().filter(|r| r.events.is_some_and(|e| e.silent == 1))
    })
    .await;
    let events = reading.events.expect("events");
    assert_eq!((events.sending, events.counted), (0, false));
    assert_eq!((reading.load.arrived, reading.load.completed), (None, None), "no counters: depth alone");
    assert!(events.to_string().contains("start them with -E"), "{events}");
    let metrics = Metrics::install();
    metrics.source_polled("events-silent", Kind::Celery, &Ok(reading), Duration::ZERO, false);
    let series = "queue_autoscaler_celery_event_workers{source=\"events-silent\"}";
    assert_eq!(metric(&metrics.render(), series), 0.0);
    scope.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_follows_the_db_and_the_global_keyprefix_as_kombu_names_it() {
    let scope = Scope::new("events-channel");
    let tag = unique("chan");
    let _prefixed = scope.worker(&format!("celery@{tag}-a"), 1, true);
    let db3 = scope.broker.replace("/0", "/3");
    let plain = WorkerSpec {
        broker: &db3,
        prefix: "-",
        queue: scope.queue,
        hostname: &format!("celery@{tag}-b"),
        concurrency: 1,
        heartbeat: 1.0,
        events: true,
    };
    let _plain = CeleryWorker::start(&plain);
    let ours = |prefix: &str| {
        let mut settings = CelerySettings::for_queues(&[scope.queue]);
        settings.global_keyprefix = prefix.to_owned();
        settings.events = true;
        settings.hostname_pattern = HostnamePattern::parse(&format!("celery@{tag}-{{pod}}")).expect("pattern");
        settings
    };
    let mut shared = Shared::default();
    let prefixed_db0 = source(&scope.broker, ours(&scope.prefix), &mut shared);
    let plain_db3 = source(&db3, ours(""), &mut shared);
    let plain_db0 = source(&scope.broker, ours(""), &mut shared);
    heard(&prefixed_db0, 1).await;
    heard(&plain_db3, 1).await;
    // Both workers heard on their channels: one settled look at db 0's default channel hears neither.
    let reading = heard(&plain_db0, 0).await;
    assert_eq!(reading.events.map(|e| e.workers), Some(0));
    assert_eq!(busy(&prefixed_db0).await, Some(BTreeMap::new()), "heard and idle");
    scope.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_comes_back_and_the_busy_state_is_unknown_meanwhile() {
    let port = support::daemon::free_port();
    let server = PrivateRedis::start(port, &[]);
    let broker = format!("redis://127.0.0.1:{}/0", server.port);
    let pod = unique("pod");
    let spec = WorkerSpec {
        broker: &broker,
        prefix: "-",
        queue: "work",
        hostname: &format!("celery@{pod}"),
        concurrency: 1,
        heartbeat: 1.0,
        events: true,
    };
    let _worker = CeleryWorker::start(&spec);
    let mut settings = CelerySettings::for_queues(&["work"]);
    settings.events = true;
    let mut shared = Shared::default();
    let first = source(&broker, settings.clone(), &mut shared);
    let second = source(&broker, settings, &mut shared);
    heard(&first, 1).await;
    heard(&second, 1).await;
    let mut redis = redis::Client::open(broker.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let patterns: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query_async(&mut redis).await.unwrap();
    assert_eq!(patterns, 1, "one subscription for the two sources on this broker");
    publish(&broker, "-", "work", 600.0, 1, None);
    until("the task running", || async { busy(&first).await.filter(|b| b.get(&pod) == Some(&1)) }).await;

    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut redis).await.unwrap();
    assert!(killed >= 1, "the subscription was killed");
    let unknown = until("the busy state unknown after the loss", || async {
        match first.busy_hosts().await.expect("supported") {
            Err(error) => Some(error.to_string()),
            Ok(_) => None,
        }
    })
    .await;
    assert!(unknown.contains("not subscribed") || unknown.contains("too recently"), "{unknown}");
    until("the busy pod known again", || async { busy(&first).await.filter(|b| b.get(&pod) == Some(&1)) }).await;
    let patterns: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query_async(&mut redis).await.unwrap();
    assert_eq!(patterns, 1, "resubscribed once");
}

/// `once` against the test API server: 4 replicas, no task waiting, tasks running on two pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_scales_down_to_the_busy_pods_and_marks_them_costly() {
    let scope = Scope::new("events-e2e");
    let api = ApiServer::start().await;
    api.add_deployment("jobs", "worker", 4);
    for i in 0..4 {
        api.put_pod("jobs", &format!("worker-{i}"), &[("app", "worker")], Some("node-1"), None);
    }
    // worker-1 and worker-3 take the target's queue, one task at a time; the others another queue.
    let _workers: Vec<_> = (0..4)
        .map(|i| scope.worker_on(if i % 2 == 1 { scope.queue } else { "elsewhere" }, &format!("celery@worker-{i}"), 1))
        .collect();
    let watcher = source(&scope.broker, scope.settings(), &mut Shared::default());
    heard(&watcher, 4).await;
    scope.publish(600.0, 2, None);
    let running = BTreeMap::from([("worker-1".to_owned(), 1), ("worker-3".to_owned(), 1)]);
    until("worker-1 and worker-3 running", || async { busy(&watcher).await.filter(|b| *b == running) }).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, e2e_config(&scope)).unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let out = run(&["once", "--config", path.to_str().unwrap(), "--output", "json"], Some(&kubeconfig), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let target = &json[0];
    // Nothing waits: 1 wanted, but two pods run tasks.
    assert_eq!((target["desired"].as_u64(), target["busy_pods"].as_u64()), (Some(2), Some(2)), "{target:#}");
    assert!(target["reason"].as_str().unwrap().contains("held up by 2 worker pod(s) running tasks"), "{target:#}");
    // The first poll waited (at most half the source's timeout) for every worker to be heard.
    let events = &target["triggers"][0]["events"];
    assert_eq!(events["subscription"], "settled", "{target:#}");
    assert_eq!((events["workers"].as_u64(), events["sending"].as_u64()), (Some(4), Some(4)), "{target:#}");
    assert_eq!(api.replicas("jobs", "worker"), 2);
    assert_eq!(api.pod_annotations("jobs", "worker-1")[COST], "1000");
    assert_eq!(api.pod_annotations("jobs", "worker-3")[COST], "1000");
    let patched: Vec<String> = api.pod_patches().into_iter().map(|(_, name, _)| name).collect();
    assert_eq!(patched, vec!["worker-1", "worker-3"], "idle pods already cost 0: untouched");
    scope.clean().await;
}

fn e2e_config(scope: &Scope) -> String {
    let events = format!("global_keyprefix = \"{}\"\nevents = true\ntimeout = \"8s\"", scope.prefix);
    let down_at_once = "stabilization = \"0s\"\npolicies = [{ type = \"percent\", value = 100, period = \"1s\" }]";
    Toml::new()
        .celery_at("jobs", &scope.broker, scope.queue)
        .raw(&events)
        .target("celery-workers", "jobs", "worker")
        .bounds(1, 10)
        .per_replica("jobs", 4)
        .raw("protect_busy_workers = true")
        .table("scale_down", down_at_once)
        .render()
}
