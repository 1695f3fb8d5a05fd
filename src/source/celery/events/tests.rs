use super::*;

fn totals(received: u64, completed: u64, succeeded: u64, runtime_seconds: f64) -> Totals {
    Totals { received, completed, succeeded, runtime_seconds }
}

#[test]
fn arrivals_are_tasks_taken_plus_the_change_in_those_waiting() {
    let mut counts = Counts::default();
    let first = counts.count(1, totals(40, 30, 30, 60.0), 5.0);
    assert_eq!(first, Counted { arrived: 0, completed: 0, succeeded: 0, runtime_seconds: 0.0 }, "counted from here");
    // 20 taken by the workers while the queue grew by 10: 30 arrived.
    let second = counts.count(1, totals(60, 45, 44, 90.0), 15.0);
    assert_eq!(second, Counted { arrived: 30, completed: 15, succeeded: 14, runtime_seconds: 30.0 });
    // 5 taken, the queue purged of 15: the fall counts as no arrival, not as minus ten; it is set
    // against the next interval (7 more) only, and forgotten after.
    assert_eq!(counts.count(1, totals(65, 50, 49, 100.0), 0.0).arrived, 30);
    assert_eq!(counts.count(1, totals(70, 50, 49, 100.0), 2.0).arrived, 30);
    assert_eq!(counts.count(1, totals(74, 50, 49, 100.0), 2.0).arrived, 34);
}

#[test]
fn a_late_task_received_is_counted_in_the_next_interval() {
    let mut counts = Counts::default();
    counts.count(1, totals(0, 0, 0, 0.0), 3.0);
    // The queue was emptied by a worker whose three `task-received` were still on their way.
    assert_eq!(counts.count(1, totals(0, 0, 0, 0.0), 0.0).arrived, 0);
    // They came, with 2 new arrivals taken: 2 arrived in all, none lost and none counted twice.
    assert_eq!(counts.count(1, totals(5, 0, 0, 0.0), 0.0).arrived, 2);
}

#[test]
fn a_new_subscription_restarts_the_counters_at_zero() {
    let mut counts = Counts::default();
    counts.count(1, totals(0, 0, 0, 0.0), 0.0);
    let before = counts.count(1, totals(100, 90, 90, 45.0), 0.0);
    assert_eq!((before.arrived, before.completed), (100, 90));
    // Reconnected: the new subscription has already counted more than the old one did.
    let after = counts.count(2, totals(150, 140, 140, 70.0), 0.0);
    assert_eq!(after, Counted { arrived: 0, completed: 0, succeeded: 0, runtime_seconds: 0.0 }, "a visible reset");
    assert_eq!(counts.count(2, totals(160, 150, 150, 75.0), 0.0).arrived, 10);
}

fn settings(apply: impl FnOnce(&mut CelerySettings)) -> CelerySettings {
    let mut settings = CelerySettings::for_queues(&["celery"]);
    apply(&mut settings);
    settings
}

#[test]
fn the_channel_is_the_one_kombu_publishes_to() {
    assert_eq!(channel_pattern(&settings(|_| {}), 0), "/0.celeryev/*");
    assert_eq!(channel_pattern(&settings(|s| s.global_keyprefix = "app:".into()), 3), "app:/3.celeryev/*");
    assert_eq!(channel_pattern(&settings(|s| s.fanout_prefix = FanoutPrefix::Enabled(false)), 3), "celeryev/*");
    assert_eq!(
        channel_pattern(&settings(|s| s.fanout_prefix = FanoutPrefix::Custom("/x{db}.".into())), 2),
        "/x2.celeryev/*"
    );
    assert_eq!(channel_pattern(&settings(|s| s.fanout_patterns = false), 0), "/0.celeryev");
    assert_eq!(channel_pattern(&settings(|s| s.event_exchange = "ev*[1]".into()), 0), "/0.ev\\*\\[1\\]/*");
}

#[test]
fn the_status_says_what_to_do() {
    let status = |subscription, workers, silent, counted| EventsStatus {
        subscription,
        workers,
        sending: workers - silent,
        silent,
        counted,
    };
    let settled = status(SubscriptionState::Settled, 3, 1, false);
    assert_eq!(settled.sending(), 2);
    assert_eq!(
        settled.to_string(),
        "Celery events: 3 worker(s) heard; 1 run tasks without sending task events: start them with -E \
         (worker_send_task_events = True); rates from the queue depth"
    );
    assert_eq!(status(SubscriptionState::Settled, 2, 0, true).to_string(), "Celery events: 2 worker(s) heard");
    assert!(status(SubscriptionState::Settled, 0, 0, false).to_string().contains("--without-heartbeat"));
    assert!(status(SubscriptionState::Down, 0, 0, false).to_string().contains("not subscribed"));
    let json = serde_json::to_value(settled).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"subscription": "settled", "workers": 3, "sending": 2, "silent": 1, "counted": false})
    );
}
