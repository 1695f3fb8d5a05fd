use std::time::Duration;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A target with one trigger `q` (1 per replica), HPA default behavior, no cooldown.
fn target(min: u32, max: u32) -> TargetPolicy {
    TargetPolicy {
        min_replicas: min,
        max_replicas: max,
        triggers: vec![TriggerPolicy { source: "q".into(), per_replica: Some(1.0), activation: 0.0 }],
        scale_up: ScalingRules::hpa_scale_up(),
        scale_down: ScalingRules::hpa_scale_down(),
        cooldown: Duration::ZERO,
        fallback_threshold: 3,
        fallback: Fallback::Hold,
        objective: None,
    }
}

fn rules(window: u64, policies: &[(RateUnit, u32, u64)], select: Select) -> ScalingRules {
    ScalingRules {
        stabilization: secs(window),
        policies: policies
            .iter()
            .map(|&(unit, value, period)| RatePolicy { unit, value, period: secs(period) })
            .collect(),
        select,
    }
}

use RateUnit::{Percent, Pods};

/// A target being driven over time: each step decides and, like the daemon, applies the result.
struct Run {
    policy: TargetPolicy,
    history: History,
    current: u32,
}

impl Run {
    fn new(policy: TargetPolicy, current: u32) -> Self {
        Run { policy, history: History::new(), current }
    }

    fn step(&mut self, at: u64, observations: &[Observation]) -> Decision {
        self.step_paused(at, observations, Pause::None)
    }

    fn step_paused(&mut self, at: u64, observations: &[Observation], pause: Pause) -> Decision {
        let inputs = Inputs { current: self.current, ready: None, observations, pause, now: secs(at) };
        let decision = decide(&self.policy, &mut self.history, &inputs);
        if decision.should_write(self.current) {
            self.history.record_rescale(&self.policy, self.current, decision.replicas, secs(at));
            self.current = decision.replicas;
        }
        decision
    }

    /// Runs `(time, value)` steps and returns the replicas after each.
    fn trace(&mut self, steps: &[(u64, f64)]) -> Vec<u32> {
        steps.iter().map(|&(t, v)| self.step(t, &[Observation::value(v)]).replicas).collect()
    }
}

use Observation::Failed;

fn value(v: f64) -> Observation {
    Observation::value(v)
}

#[test]
fn recommendation_is_ceil_of_value_over_per_replica() {
    let trigger = TriggerPolicy { source: "q".into(), per_replica: Some(16.0), activation: 0.0 };
    let cases = [(0.0, 0), (1.0, 1), (16.0, 1), (17.0, 2), (431.0, 27), (-5.0, 0), (f64::NAN, 0), (1e300, u32::MAX)];
    for (value, expected) in cases {
        assert_eq!(trigger.recommend(value), expected, "value {value}");
    }
}

#[test]
fn takes_the_maximum_over_triggers() {
    let mut policy = target(1, 100);
    policy.triggers.push(TriggerPolicy { source: "r".into(), per_replica: Some(10.0), activation: 0.0 });
    let mut run = Run::new(policy, 3);
    let d = run.step(0, &[value(3.0), value(95.0)]);
    assert_eq!(d.recommended, vec![Some(3), Some(10)]);
    assert_eq!(d.replicas, 7, "limited by +4 pods from 3");
    assert!(matches!(&d.reason, Reason::Metric { wanted: 10, driver: Some(dr), .. } if dr.source == "r"));
}

#[test]
fn hpa_default_scale_up_from_three_pods() {
    // k8s.md §1.6: Pods gives 3+4 = 7, Percent gives 6, Max picks 7; 15 s later max(11, 14) = 14.
    let mut run = Run::new(target(1, 100), 3);
    assert_eq!(run.trace(&[(0, 1000.0), (5, 1000.0), (15, 1000.0)]), vec![7, 7, 14]);
}

#[test]
fn hpa_scale_down_percent_example() {
    // k8s.md §1.6: Percent 10 / 60 s from 80 → 72; stays 72 inside the period; 64 after 60 s.
    let mut policy = target(1, 100);
    policy.scale_down = rules(0, &[(Percent, 10, 60)], Select::Max);
    let mut run = Run::new(policy, 80);
    assert_eq!(run.trace(&[(0, 1.0), (30, 1.0), (59, 1.0), (60, 1.0)]), vec![72, 72, 72, 64]);
}

#[test]
fn scale_up_policies_count_from_the_start_of_their_period() {
    let mut policy = target(1, 100);
    policy.scale_up = rules(0, &[(Pods, 2, 60)], Select::Max);
    let mut run = Run::new(policy, 2);
    // +2 per 60 s: 4 at t=0, nothing more until the first event leaves the period.
    assert_eq!(run.trace(&[(0, 50.0), (30, 50.0), (59, 50.0), (60, 50.0), (120, 50.0)]), vec![4, 4, 4, 6, 8]);
}

#[test]
fn select_min_takes_the_smaller_change_and_disabled_none() {
    let mut policy = target(1, 100);
    policy.scale_up = rules(0, &[(Pods, 4, 15), (Percent, 100, 15)], Select::Min);
    assert_eq!(Run::new(policy.clone(), 10).trace(&[(0, 100.0)]), vec![14], "min(14, 20)");
    policy.scale_up.select = Select::Disabled;
    let mut run = Run::new(policy, 10);
    let d = run.step(0, &[value(100.0)]);
    assert_eq!((d.replicas, d.reason.label()), (10, "scale_up_disabled"));
}

#[test]
fn scale_down_stabilization_keeps_the_highest_recent_recommendation() {
    let mut policy = target(1, 100);
    policy.scale_down = rules(60, &[(Percent, 100, 15)], Select::Max);
    let mut run = Run::new(policy, 10);
    let replicas = run.trace(&[(0, 10.0), (10, 6.0), (20, 4.0), (59, 2.0), (65, 2.0), (75, 2.0), (125, 2.0)]);
    // Seeded with 10 at t=0; the 10s leave the 60 s window at t=60, the 6 at t=70, the 4 at t=80.
    assert_eq!(replicas, vec![10, 10, 10, 10, 6, 4, 2]);
    assert_eq!(run.step(126, &[value(2.0)]).reason.label(), "metric");
}

#[test]
fn scale_up_stabilization_takes_the_lowest_recent_recommendation() {
    let mut policy = target(1, 100);
    policy.scale_up = rules(30, &[(Pods, 100, 15)], Select::Max);
    let mut run = Run::new(policy, 2);
    let d = run.step(0, &[value(10.0)]);
    assert_eq!((d.replicas, d.reason.label()), (2, "scale_up_stabilized"), "seeded with 2");
    assert_eq!(run.trace(&[(10, 10.0), (31, 10.0)]), vec![2, 10]);
}

#[test]
fn a_fresh_history_does_not_scale_down_within_the_window() {
    // Like the HPA after a restart: seeded with current, so no scale-down for 300 s.
    let mut run = Run::new(target(1, 100), 8);
    let d = run.step(0, &[value(1.0)]);
    assert_eq!((d.replicas, d.reason.label()), (8, "scale_down_stabilized"));
    assert_eq!(run.trace(&[(300, 1.0)]), vec![1]);
}

#[test]
fn cooldown_blocks_scale_down_after_any_rescale() {
    let mut policy = target(1, 100);
    policy.scale_down = rules(0, &[(Percent, 100, 15)], Select::Max);
    policy.cooldown = secs(120);
    let mut run = Run::new(policy, 2);
    assert_eq!(run.trace(&[(0, 6.0)]), vec![6]);
    let d = run.step(60, &[value(1.0)]);
    assert_eq!(d.replicas, 6);
    assert_eq!(d.reason.label(), "cooldown");
    assert!(d.reason.to_string().contains("60s left"), "{}", d.reason);
    assert_eq!(run.trace(&[(119, 1.0), (120, 1.0)]), vec![6, 1]);
}

#[test]
fn activation_decides_zero_and_zero_is_reached_through_one() {
    let mut policy = target(0, 10);
    policy.triggers[0].activation = 5.0;
    policy.scale_down = rules(0, &[(Percent, 100, 15)], Select::Max);
    policy.cooldown = secs(60);
    let mut run = Run::new(policy, 0);
    // 5 is not above the activation of 5: stays at 0. 6 activates: ceil(6/1) = 6, +4 pods → 4.
    assert_eq!(run.trace(&[(0, 5.0), (10, 6.0)]), vec![0, 4]);
    // Inactive again: wanted 0, but cooldown first, then 4 → 1, cooldown again, then 1 → 0.
    let d = run.step(70, &[value(2.0)]);
    assert_eq!((d.replicas, d.reason.label()), (1, "step_to_one"));
    assert!(d.reason.to_string().contains("at or below activation"), "{}", d.reason);
    assert_eq!(run.trace(&[(100, 2.0), (130, 2.0)]), vec![1, 0]);
}

#[test]
fn activation_is_ignored_when_min_is_at_least_one() {
    let mut policy = target(1, 10);
    policy.triggers[0].activation = 50.0;
    assert_eq!(Run::new(policy, 1).trace(&[(0, 3.0)]), vec![3]);
}

#[test]
fn a_value_above_activation_keeps_at_least_one_replica() {
    let mut policy = target(0, 10);
    policy.triggers[0].per_replica = Some(100.0);
    assert_eq!(Run::new(policy, 0).trace(&[(0, 1.0)]), vec![1]);
}

#[test]
fn a_failed_poll_never_scales_down() {
    let mut policy = target(1, 100);
    policy.scale_down = rules(0, &[(Percent, 100, 15)], Select::Max);
    policy.triggers.push(TriggerPolicy { source: "r".into(), per_replica: Some(1.0), activation: 0.0 });
    let mut run = Run::new(policy, 6);
    let d = run.step(0, &[Failed, value(1.0)]);
    assert_eq!((d.replicas, d.reason.label()), (6, "held_on_failure"));
    assert!(d.reason.to_string().contains("poll failed for q"), "{}", d.reason);
    // A scale-up asked for by the triggers that answered still goes ahead.
    let d = run.step(1, &[Failed, value(8.0)]);
    assert_eq!((d.replicas, d.reason.label()), (8, "metric"));
    assert!(d.reason.to_string().contains("1 trigger(s) failed"), "{}", d.reason);
    // Every trigger failed: hold.
    assert_eq!(run.step(2, &[Failed, Failed]).replicas, 8);
}

#[test]
fn fallback_applies_after_the_threshold_of_consecutive_failures() {
    let mut policy = target(1, 20);
    policy.fallback = Fallback::Replicas(10);
    let mut run = Run::new(policy, 4);
    let labels: Vec<_> = (0..4).map(|t| run.step(t, &[Failed]).reason.label()).collect();
    assert_eq!(labels, vec!["held_on_failure", "held_on_failure", "fallback", "fallback"]);
    assert_eq!(run.current, 10);
    // A success resets the streak.
    run.step(5, &[value(10.0)]);
    assert_eq!(run.step(6, &[Failed]).reason.label(), "held_on_failure");
}

#[test]
fn fallback_never_lowers_and_stays_within_bounds() {
    let mut policy = target(1, 8);
    policy.fallback_threshold = 1;
    policy.fallback = Fallback::Replicas(3);
    assert_eq!(Run::new(policy.clone(), 6).step(0, &[Failed]).replicas, 6, "never lowers");
    policy.fallback = Fallback::Replicas(30);
    assert_eq!(Run::new(policy.clone(), 6).step(0, &[Failed]).replicas, 8, "clamped to max");
    policy.fallback = Fallback::Hold;
    assert_eq!(Run::new(policy, 0).step(0, &[Failed]).replicas, 1, "clamped to min");
}

#[test]
fn pause_freezes_and_paused_replicas_pins_within_bounds() {
    let cases = [
        (Pause::Frozen, 7, 7, "paused", false),
        (Pause::Pinned(3), 7, 3, "paused_replicas", true),
        (Pause::Pinned(50), 7, 20, "paused_replicas", true),
        (Pause::Pinned(0), 7, 2, "paused_replicas", true),
    ];
    for (pause, current, expected, label, writes) in cases {
        let mut run = Run::new(target(2, 20), current);
        let inputs = Inputs { current, ready: None, observations: &[value(100.0)], pause, now: secs(0) };
        let d = decide(&run.policy, &mut run.history, &inputs);
        assert_eq!((d.replicas, d.reason.label(), d.should_write(current)), (expected, label, writes), "{pause:?}");
    }
}

#[test]
fn out_of_bounds_current_is_brought_back_first() {
    let d = Run::new(target(2, 10), 25).step(0, &[value(4.0)]);
    assert_eq!((d.replicas, d.reason.to_string().as_str()), (10, "current 25 above max_replicas 10"));
    let d = Run::new(target(2, 10), 0).step(0, &[value(0.0)]);
    assert_eq!((d.replicas, d.reason.label()), (2, "out_of_bounds"));
}

#[test]
fn bounds_cap_the_metric_and_say_so() {
    let mut run = Run::new(target(1, 5), 5);
    let d = run.step(0, &[value(1000.0)]);
    assert_eq!((d.replicas, d.reason.label()), (5, "max_replicas"));
    let mut policy = target(3, 10);
    policy.scale_down.stabilization = Duration::ZERO;
    let d = Run::new(policy, 6).step(0, &[value(0.0)]);
    assert_eq!((d.replicas, d.reason.label()), (3, "min_replicas"));
    // At the floor already, a fresh window agrees with the bound: the bound is named.
    let d = Run::new(target(1, 10), 1).step(0, &[value(0.0)]);
    assert_eq!((d.replicas, d.reason.to_string().as_str()), (1, "q=0 → 0 wanted, floored at min_replicas 1"));
}

#[test]
fn reason_reads_like_the_issue_example() {
    let mut policy = target(1, 20);
    policy.triggers[0] = TriggerPolicy { source: "celery_default".into(), per_replica: Some(16.0), activation: 0.0 };
    let d = Run::new(policy, 4).step(0, &[value(431.0)]);
    assert_eq!(d.reason.to_string(), "celery_default=431 → 27 wanted, capped by scale-up policy pods=4/15s → 8");
    assert_eq!(d.replicas, 8);
}

#[test]
fn decisions_are_deterministic() {
    let values = [3.0, 50.0, 120.0, 7.0, 0.0, 0.0, 400.0, 2.0];
    let run_once = || {
        let mut run = Run::new(target(0, 30), 0);
        (0..200u64).map(|t| run.step(t * 7, &[value(values[t as usize % 8])]).replicas).collect::<Vec<_>>()
    };
    assert_eq!(run_once(), run_once());
}

#[test]
fn busy_workers_floor_a_metric_scale_down() {
    let mut policy = target(1, 20);
    policy.scale_down.stabilization = Duration::ZERO;
    let cases = [
        // (current, value, busy, expected, label)
        (8, 2.0, 5, 5, "busy_workers"),
        (8, 2.0, 1, 2, "metric"),
        (8, 2.0, 12, 8, "busy_workers"),
        (3, 9.0, 6, 7, "scale_up_policy"), // not a scale-down: untouched
    ];
    for (current, v, busy, expected, label) in cases {
        let mut d = Run::new(policy.clone(), current).step(0, &[value(v)]);
        d.protect_busy(current, busy);
        assert_eq!((d.replicas, d.reason.label()), (expected, label), "current {current}, busy {busy}");
    }
    let mut d = Run::new(policy.clone(), 8).step(0, &[value(2.0)]);
    d.protect_busy(8, 5);
    assert_eq!(d.reason.to_string(), "q=2 → 2 wanted, held up by 5 worker pod(s) running tasks");
    let mut d = Run::new(policy.clone(), 8).step(0, &[value(2.0)]);
    d.hold_busy_unknown(8);
    assert_eq!((d.replicas, d.reason.label()), (8, "busy_unknown"));
    // An operator's pin is obeyed as it is.
    let inputs = Inputs { current: 8, ready: None, observations: &[value(2.0)], pause: Pause::Pinned(2), now: secs(0) };
    let mut d = decide(&policy, &mut History::new(), &inputs);
    d.protect_busy(8, 5);
    assert_eq!(d.replicas, 2);
}

#[test]
fn every_reason_label_is_listed() {
    let policy = RatePolicy { unit: Pods, value: 1, period: secs(1) };
    let limits = [
        Limit::UpStabilized { window: secs(1) },
        Limit::DownStabilized { window: secs(1) },
        Limit::UpPolicy { policy, allowed: 1 },
        Limit::DownPolicy { policy, allowed: 1 },
        Limit::UpDisabled,
        Limit::DownDisabled,
        Limit::Bound(Bound::Max(1)),
        Limit::Bound(Bound::Min(1)),
        Limit::Cooldown { remaining: secs(1) },
        Limit::StepToOne,
        Limit::BusyWorkers { busy: 1 },
        Limit::BusyUnknown,
    ];
    let mut reasons: Vec<Reason> = limits
        .into_iter()
        .map(|limit| Reason::Metric { driver: None, wanted: 1, limit: Some(limit), failed: 0 })
        .collect();
    reasons.extend([
        Reason::Paused,
        Reason::PausedReplicas { replicas: 1 },
        Reason::OutOfBounds { current: 1, bound: Bound::Max(1) },
        Reason::Metric { driver: None, wanted: 1, limit: None, failed: 0 },
        Reason::HeldOnFailure { failed: vec![], failures: 1 },
        Reason::Fallback { failures: 1, fallback: Fallback::Hold },
    ]);
    let labels: std::collections::BTreeSet<_> = reasons.iter().map(Reason::label).collect();
    assert_eq!(labels, Reason::LABELS.into_iter().collect(), "LABELS lists every label, once");
}

#[test]
fn a_capped_observation_never_recommends_past_its_cap() {
    let mut run = Run::new(target(1, 100), 10);
    let d = run.step(0, &[Observation::capped(1000.0, 12)]);
    assert_eq!((d.recommended.clone(), d.replicas), (vec![Some(12)], 12));
    let d = run.step(1, &[Observation::capped(5.0, 12)]);
    assert_eq!(d.recommended, vec![Some(5)], "under the cap: the plain recommendation");
}

#[test]
fn a_percent_only_scale_up_still_leaves_zero() {
    // 100 % of 0 is 0: without the first replica coming anyway, this target would stay at 0.
    let mut policy = target(0, 20);
    policy.scale_up = rules(0, &[(Percent, 100, 15)], Select::Max);
    let mut run = Run::new(policy, 0);
    assert_eq!(run.trace(&[(0, 10.0), (15, 10.0), (30, 10.0), (45, 10.0)]), vec![1, 2, 4, 8]);
}
