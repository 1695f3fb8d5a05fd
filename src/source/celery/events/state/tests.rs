use std::borrow::Cow;

use super::*;

fn beat(hostname: &str, freq: f64, active: u32, processed: u64) -> Event<'static> {
    Event::Heartbeat { hostname: Cow::Owned(hostname.to_owned()), freq, active, processed }
}

fn task(hostname: &str, kind: TaskEvent) -> Event<'static> {
    Event::Task { hostname: Cow::Owned(hostname.to_owned()), kind }
}

fn pattern(text: &str) -> HostnamePattern {
    HostnamePattern::parse(text).expect("pattern")
}

/// A state subscribed at `t0`, with the default pattern registered as view 0.
fn subscribed(t0: Instant) -> State {
    let mut state = State::new();
    assert_eq!(state.register(&HostnamePattern::default()), 0);
    state.subscribed(t0);
    state
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn a_worker_is_gone_two_heartbeat_intervals_after_it_was_last_heard() {
    let t0 = Instant::now();
    let mut state = subscribed(t0);
    state.apply(&beat("celery@worker-a", 1.0, 2, 10), t0);
    state.apply(&beat("celery@worker-b", 5.0, 1, 10), t0);
    assert_eq!(state.snapshot(0, t0 + secs(1.999)).workers, 2);
    let later = state.snapshot(0, t0 + secs(2.0));
    assert_eq!((later.workers, later.active), (1, 1), "worker-a expired at 2 × 1 s: {later:?}");
    assert_eq!(later.busy, BTreeMap::from([("worker-b".to_owned(), 1)]));
    assert_eq!(state.snapshot(0, t0 + secs(10.0)).workers, 0, "worker-b at 2 × 5 s");
    // Heard again: alive again, from scratch.
    state.apply(&beat("celery@worker-a", 1.0, 0, 12), t0 + secs(11.0));
    assert_eq!(state.snapshot(0, t0 + secs(11.5)).workers, 1);
}

#[test]
fn a_task_event_proves_a_worker_alive_and_a_warm_shutdown_removes_it() {
    let t0 = Instant::now();
    let mut state = subscribed(t0);
    state.apply(&beat("celery@worker-a", 1.0, 1, 0), t0);
    state.apply(&task("celery@worker-a", TaskEvent::Received), t0 + secs(1.5));
    assert_eq!(state.snapshot(0, t0 + secs(3.0)).workers, 1, "heard at 1.5 s: alive until 3.5 s");
    state.apply(&task("celery@worker-new", TaskEvent::Started), t0 + secs(3.0));
    let snapshot = state.snapshot(0, t0 + secs(3.0));
    assert_eq!(snapshot.busy.get("worker-new"), Some(&1), "known from a task event alone: {snapshot:?}");
    state.apply(&Event::Offline { hostname: "celery@worker-a".into() }, t0 + secs(3.1));
    assert_eq!(state.snapshot(0, t0 + secs(3.1)).workers, 1);
}

#[test]
fn busy_counts_follow_the_task_events_between_heartbeats() {
    let t0 = Instant::now();
    let mut state = subscribed(t0);
    let busy = |state: &mut State, at: f64| state.snapshot(0, t0 + secs(at)).busy.get("worker-a").copied();
    state.apply(&beat("celery@worker-a", 2.0, 1, 5), t0);
    assert_eq!(busy(&mut state, 0.1), Some(1));
    state.apply(&task("celery@worker-a", TaskEvent::Started), t0 + secs(0.5));
    assert_eq!(busy(&mut state, 0.5), Some(2), "started since the heartbeat");
    state.apply(&task("celery@worker-a", TaskEvent::Succeeded { runtime: 3.0 }), t0 + secs(1.0));
    state.apply(&task("celery@worker-a", TaskEvent::Failed), t0 + secs(1.0));
    assert_eq!(busy(&mut state, 1.0), None, "both ended: idle, left out of the busy pods");
    state.apply(&task("celery@worker-a", TaskEvent::Retried), t0 + secs(1.2));
    assert_eq!(busy(&mut state, 1.2), None, "never below zero");
    state.apply(&beat("celery@worker-a", 2.0, 3, 9), t0 + secs(2.0));
    assert_eq!(busy(&mut state, 2.0), Some(3), "a heartbeat says it again");
}

#[test]
fn busy_pods_are_named_through_the_pattern() {
    let t0 = Instant::now();
    let mut state = subscribed(t0);
    let pair = state.register(&pattern("*@{pod}"));
    state.apply(&beat("celery@worker-a", 2.0, 2, 0), t0);
    state.apply(&beat("celery@worker-b.workers.data.svc.cluster.local", 2.0, 1, 0), t0);
    state.apply(&beat("celery@worker-c", 2.0, 0, 0), t0);
    state.apply(&beat("w2@worker-a", 2.0, 4, 0), t0);
    let default = state.snapshot(0, t0);
    let expected = [("worker-a", 2), ("worker-b.workers.data.svc.cluster.local", 1)];
    assert_eq!(default.busy, expected.map(|(p, n)| (p.to_owned(), n)).into_iter().collect());
    assert_eq!((default.workers, default.active), (3, 3), "w2@worker-a is not celery@…");
    let both = state.snapshot(pair, t0);
    assert_eq!(both.busy.get("worker-a"), Some(&6), "two workers in one pod add up");
    assert_eq!(both.workers, 4);
}

#[test]
fn totals_count_per_pattern_from_the_subscription() {
    let t0 = Instant::now();
    let mut state = subscribed(t0);
    for kind in [TaskEvent::Received, TaskEvent::Received, TaskEvent::Started] {
        state.apply(&task("celery@worker-a", kind), t0);
    }
    let high = state.register(&pattern("high@{pod}"));
    assert_eq!(state.register(&pattern("high@{pod}")), high, "one view per distinct pattern");
    for kind in [
        TaskEvent::Received,
        TaskEvent::Succeeded { runtime: 1.5 },
        TaskEvent::Succeeded { runtime: 2.5 },
        TaskEvent::Failed,
        TaskEvent::Retried,
        TaskEvent::Other,
    ] {
        state.apply(&task("celery@worker-a", kind), t0);
        state.apply(&task("high@worker-b", kind), t0);
    }
    let totals = state.snapshot(0, t0).totals;
    assert_eq!(totals, Totals { received: 3, completed: 4, succeeded: 2, runtime_seconds: 4.0 });
    assert_eq!(state.snapshot(high, t0).totals.received, 1, "high@worker-b only, since it registered");
    state.lost();
    assert_eq!(state.snapshot(0, t0).link, Link::Down);
    state.subscribed(t0 + secs(5.0));
    let fresh = state.snapshot(0, t0 + secs(5.0));
    assert_eq!((fresh.totals, fresh.workers, fresh.epoch), (Totals::default(), 0, 2), "{fresh:?}");
}

#[test]
fn the_state_settles_one_expiry_window_after_subscribing() {
    let t0 = Instant::now();
    let mut state = State::new();
    state.register(&HostnamePattern::default());
    assert_eq!(state.snapshot(0, t0).link, Link::Down);
    state.subscribed(t0);
    assert_eq!(state.snapshot(0, t0 + secs(1.0)).link, Link::Settling { remaining: secs(3.0) });
    assert_eq!(state.snapshot(0, t0 + secs(4.0)).link, Link::Settled, "2 × Celery's default 2 s");
    // A worker with a 10 s heartbeat: after a new subscription, it may take 20 s to hear it.
    state.apply(&beat("celery@slow", 10.0, 0, 0), t0 + secs(5.0));
    state.lost();
    state.subscribed(t0 + secs(30.0));
    assert_eq!(state.snapshot(0, t0 + secs(45.0)).link, Link::Settling { remaining: secs(5.0) });
    assert_eq!(state.snapshot(0, t0 + secs(50.0)).link, Link::Settled);
}

#[test]
fn a_worker_running_tasks_without_task_events_is_silent() {
    let t0 = Instant::now();
    let mut state = subscribed(t0);
    state.apply(&beat("celery@plain", 1.0, 0, 7), t0);
    state.apply(&beat("celery@with-e", 1.0, 0, 7), t0);
    state.apply(&beat("celery@plain", 1.0, 1, 8), t0 + secs(1.0));
    state.apply(&beat("celery@with-e", 1.0, 1, 8), t0 + secs(1.0));
    assert_eq!(state.snapshot(0, t0 + secs(1.0)).silent, 0, "its task events may still be on their way");
    state.apply(&task("celery@with-e", TaskEvent::Started), t0 + secs(1.5));
    state.apply(&beat("celery@plain", 1.0, 0, 8), t0 + secs(2.0));
    state.apply(&beat("celery@with-e", 1.0, 0, 8), t0 + secs(2.0));
    let snapshot = state.snapshot(0, t0 + secs(2.0));
    assert_eq!((snapshot.workers, snapshot.silent), (2, 1), "{snapshot:?}");
    state.apply(&beat("celery@idle", 1.0, 0, 0), t0 + secs(2.0));
    state.apply(&beat("celery@idle", 1.0, 0, 0), t0 + secs(3.0));
    assert_eq!(state.snapshot(0, t0 + secs(3.0)).silent, 1, "an idle worker cannot tell: not silent");
}
