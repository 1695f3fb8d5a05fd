use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn fleet(ready: u32, slots: u32, prior: Option<f64>) -> Fleet {
    Fleet { ready, slots, prior_task_seconds: prior }
}

/// Feeds `loads(i)` at polls every `every` seconds; returns the last estimate.
fn run(tracker: &mut Tracker, polls: u64, every: u64, fleet: Fleet, loads: impl Fn(u64) -> Load) -> Estimate {
    let mut last = None;
    for i in 0..polls {
        last = Some(tracker.observe(loads(i), fleet, secs(i * every)));
    }
    last.expect("at least one poll")
}

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance * expected.abs().max(1e-9)
}

#[test]
fn counted_arrivals_are_the_counters_rate() {
    // A Kafka topic: 5 messages a second, lag steady at 20.
    let load =
        |i: u64| Load { waiting: 20.0, arrived: Some(1000 + 75 * i), completed: Some(980 + 75 * i), ..Load::default() };
    let estimate = run(&mut Tracker::new(), 40, 15, fleet(2, 1, Some(0.2)), load);
    assert_eq!(estimate.method, Method::Counted);
    assert!(close(estimate.arrival_rate, 5.0, 1e-6), "{estimate:?}");
    assert!(close(estimate.completion_rate.unwrap_or(0.0), 5.0, 1e-6));
    assert!(estimate.settled && !estimate.idle);
}

#[test]
fn balance_counts_what_came_in_from_what_went_out() {
    // Airflow: queued grows by 15 a poll, running steady at 150, 75 finished a poll: 6/s arrive.
    let load =
        |i: u64| Load { waiting: 15.0 * i as f64, in_flight: Some(150.0), completed: Some(75 * i), ..Load::default() };
    let estimate = run(&mut Tracker::new(), 40, 15, fleet(10, 16, Some(30.0)), load);
    assert_eq!(estimate.method, Method::Balance);
    assert!(close(estimate.arrival_rate, 6.0, 1e-3), "{estimate:?}");
    // Little's law: 150 busy slots finishing 5 a second run 30 s each.
    assert!(close(estimate.task_seconds.unwrap_or(0.0), 30.0, 1e-6), "{estimate:?}");
}

#[test]
fn occupancy_infers_arrivals_from_the_work_in_flight() {
    // Celery with unacked: nothing waiting, 40 in flight, 20 s tasks: 2 tasks/s keep it so.
    let load = |_| Load { waiting: 0.0, in_flight: Some(40.0), ..Load::default() };
    let estimate = run(&mut Tracker::new(), 20, 15, fleet(4, 16, Some(20.0)), load);
    assert_eq!(estimate.method, Method::Occupancy);
    assert!(close(estimate.arrival_rate, 2.0, 1e-6), "{estimate:?}");
}

#[test]
fn depth_alone_reads_the_rate_while_a_queue_stands_and_probes_down_while_it_does_not() {
    // 2 ready replicas × 4 slots of 10 s tasks serve 0.8/s; the queue grows by 1/s: 1.8/s arrive.
    let mut tracker = Tracker::new();
    let growing = |i: u64| Load { waiting: 10.0 + 15.0 * i as f64, ..Load::default() };
    let estimate = run(&mut tracker, 30, 15, fleet(2, 4, Some(10.0)), growing);
    assert_eq!(estimate.method, Method::Depth);
    assert!(close(estimate.arrival_rate, 1.8, 1e-6), "{estimate:?}");
    // Then the queue stays empty: nothing says how much the workers had to spare, so the
    // estimate halves every PROBE_HALF_LIFE (within the smoothing).
    let start = 30 * 15;
    for i in 0..=40u64 {
        tracker.observe(Load::default(), fleet(2, 4, Some(10.0)), secs(start + i * 15));
    }
    let later = tracker.observe(Load::default(), fleet(2, 4, Some(10.0)), secs(start + 41 * 15));
    assert!(later.arrival_rate < 0.8 * 0.5, "decayed below half the capacity: {later:?}");
    assert!(later.arrival_rate > 0.0);
}

#[test]
fn the_scale_down_rate_is_the_peak_of_the_window() {
    let mut tracker = Tracker::new();
    let f = fleet(2, 1, Some(1.0));
    let mut arrived = 0;
    let mut last = None;
    for i in 0..60u64 {
        arrived += if i < 30 { 150 } else { 15 }; // 10/s, then 1/s
        last = Some(tracker.observe(Load { arrived: Some(arrived), ..Load::default() }, f, secs(i * 15)));
        if i == 32 {
            let e = last.expect("observed");
            assert!(e.arrival_rate < 9.0 && e.arrival_rate_high > 9.9, "the peak stays in the window: {e:?}");
        }
    }
    let e = last.expect("observed");
    assert!(close(e.arrival_rate, 1.0, 0.01) && close(e.arrival_rate_high, 1.0, 0.1), "the window moved on: {e:?}");
}

#[test]
fn one_quiet_poll_cannot_lower_the_scale_down_rate() {
    let mut tracker = Tracker::new();
    let f = fleet(2, 1, Some(1.0));
    let mut arrived = 0;
    let mut high = 0.0;
    for i in 0..40u64 {
        arrived += if i == 30 { 0 } else { 75 };
        let e = tracker.observe(Load { arrived: Some(arrived), ..Load::default() }, f, secs(i * 15));
        if i == 30 {
            assert!(e.arrival_rate < 4.5, "the smoothed rate dips: {e:?}");
            assert!(e.arrival_rate_high >= high, "but not the rate a scale-down must serve: {e:?}");
        }
        high = e.arrival_rate_high;
    }
}

#[test]
fn counters_that_go_backwards_or_values_that_make_no_sense_unsettle_the_estimate() {
    let mut tracker = Tracker::new();
    let f = fleet(2, 1, Some(1.0));
    for i in 0..20u64 {
        tracker.observe(Load { arrived: Some(100 * i), ..Load::default() }, f, secs(i * 15));
    }
    let reset = tracker.observe(Load { arrived: Some(5), ..Load::default() }, f, secs(300));
    assert!(!reset.settled, "a counter reset: no scale-down may rest on it");
    let next = tracker.observe(Load { arrived: Some(105), ..Load::default() }, f, secs(315));
    assert!(!next.settled, "not until the rates have been watched a whole window again");
    let later = run(&mut tracker, 1, 1, f, |_| Load { arrived: Some(105 + 100 * 13), ..Load::default() });
    assert!(!later.settled, "polled at the same instant as the origin: still within the window");
    let nan = tracker.observe(Load { waiting: f64::NAN, ..Load::default() }, f, secs(600));
    assert!(!nan.settled);
    let huge = tracker.observe(Load { arrived: Some(u64::MAX), ..Load::default() }, f, secs(615));
    assert!(!huge.settled, "an absurd rate is a broken counter");
}

#[test]
fn measured_durations_take_over_from_the_prior() {
    let mut tracker = Tracker::new();
    let f = fleet(2, 16, Some(60.0));
    let first = tracker.observe(Load::default(), f, secs(0));
    assert_eq!(first.task_seconds, Some(60.0), "the prior alone");
    // 20 tasks of 30 s each, measured: as much weight as the prior.
    let measured = Runtimes { tasks: 20, seconds: 600.0 };
    let e = tracker.observe(Load { runtimes: Some(measured), ..Load::default() }, f, secs(15));
    assert_eq!(e.task_seconds, Some(60.0), "a counter's first sight is only a baseline");
    let e = tracker.observe(
        Load { runtimes: Some(Runtimes { tasks: 40, seconds: 1200.0 }), ..Load::default() },
        f,
        secs(30),
    );
    assert!(close(e.task_seconds.unwrap_or(0.0), 45.0, 0.01), "(20 × 60 + 20 × 30) / 40: {e:?}");
    let without = Tracker::new().observe(Load::default(), fleet(2, 16, None), secs(0));
    assert_eq!(without.task_seconds, None, "no prior, nothing measured: unknown");
}

#[test]
fn a_lagging_kafka_group_measures_its_consumers_speed() {
    // 3 consumers, all busy (lag far above 3): 30 messages a second committed: 0.1 s each.
    let load =
        |i: u64| Load { waiting: 500.0, arrived: Some(30 * 15 * i), completed: Some(30 * 15 * i), ..Load::default() };
    let estimate = run(&mut Tracker::new(), 200, 15, fleet(3, 1, None), load);
    assert!(close(estimate.task_seconds.unwrap_or(0.0), 0.1, 1e-6), "{estimate:?}");
}

#[test]
fn idle_means_no_sign_of_a_task_for_the_whole_window() {
    let mut tracker = Tracker::new();
    let f = fleet(1, 1, Some(1.0));
    let quiet = run(&mut tracker, 13, 15, f, |_| Load { arrived: Some(7), ..Load::default() });
    assert!(quiet.idle, "nothing for 180 s: {quiet:?}");
    let moving = tracker.observe(Load { arrived: Some(8), ..Load::default() }, f, secs(195));
    assert!(!moving.idle, "one task counted in");
    let mut fresh = Tracker::new();
    let early = run(&mut fresh, 5, 15, f, |_| Load::default());
    assert!(!early.idle, "not watched long enough to call it idle");
}
