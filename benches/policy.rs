//! Decisions per second of the pure policy, beside the bare formula it wraps; and the
//! stabilization windows as the first version kept them (a full scan at every decision), beside
//! the whole `decide()` that now keeps them in monotonic queues.
//!
//! `cargo bench --bench policy`

mod common;

use std::hint::black_box;
use std::time::Duration;

use queue_autoscaler::policy::{
    Fallback, History, Inputs, Load, Objective, Observation, Pause, Sample, ScalingRules, TargetPolicy, TriggerPolicy,
    decide,
};

const DECISIONS: u64 = 10_000;

fn policy(triggers: usize) -> TargetPolicy {
    TargetPolicy {
        min_replicas: 0,
        max_replicas: 50,
        triggers: (0..triggers)
            .map(|i| TriggerPolicy { source: format!("source-{i}"), per_replica: Some(16.0), activation: 0.0 })
            .collect(),
        scale_up: ScalingRules::hpa_scale_up(),
        scale_down: ScalingRules::hpa_scale_down(),
        cooldown: Duration::from_secs(60),
        fallback_threshold: 3,
        fallback: Fallback::Hold,
        objective: None,
    }
}

/// The same target sized for a 60 s p95 wait on 16-slot replicas of 30 s tasks.
fn objective_policy() -> TargetPolicy {
    let objective = Objective {
        max_wait: Duration::from_secs(60),
        slots: 16,
        task_seconds: Some(30.0),
        startup: Duration::from_secs(60),
        hysteresis: Objective::DEFAULT_HYSTERESIS,
    };
    TargetPolicy {
        scale_up: ScalingRules::unlimited(),
        scale_down: ScalingRules::objective_scale_down(),
        objective: Some(objective),
        ..policy(1)
    }
}

/// A source that counts: the backlog swings as `value`, the counters move with it.
fn counted(i: u64) -> Observation {
    let load = Load { waiting: value(i), in_flight: Some(100.0), completed: Some(i * 40), ..Load::default() };
    Observation::Answered(Sample { value: value(i) + 100.0, cap: None, even: false, load })
}

/// A queue that swings between bursts and idle, sampled every `step`.
fn value(i: u64) -> f64 {
    [0.0, 40.0, 400.0, 800.0, 120.0, 3.0][(i / 37 % 6) as usize]
}

/// `DECISIONS` decisions in a row, applying each as the daemon does, one every `step`.
fn run(policy: &TargetPolicy, step: Duration, observe: fn(u64) -> Observation) {
    let mut history = History::new();
    let mut current = 1;
    let observations_len = policy.triggers.len();
    let mut observations = vec![Observation::value(0.0); observations_len];
    for i in 0..DECISIONS {
        observations.fill(observe(i));
        let now = step * u32::try_from(i).unwrap_or(u32::MAX);
        let inputs = Inputs { current, ready: Some(current), observations: &observations, pause: Pause::None, now };
        let decision = decide(policy, &mut history, &inputs);
        if decision.should_write(current) {
            history.record_rescale(policy, current, decision.replicas, now);
            current = decision.replicas;
        }
        black_box(&decision);
    }
}

/// The baseline: the bare formula, no windows, no policies, no reasons.
fn run_bare(policy: &TargetPolicy) {
    for i in 0..DECISIONS {
        let wanted = (value(i) / policy.triggers[0].per_replica.unwrap_or(1.0)).ceil() as u32;
        black_box(wanted.clamp(policy.min_replicas, policy.max_replicas));
    }
}

/// The windows' live baseline: the first version of `stabilize` (before commit ace0b99), which
/// kept every recommendation of the longest window and scanned them all at each decision for
/// the lowest in the up window and the highest in the down window. The windows alone: no rate
/// policies, no reasons.
fn run_scanned_windows(policy: &TargetPolicy, step: Duration) {
    struct Stamped {
        value: u32,
        at: Duration,
    }
    let (up_window, down_window) = (policy.scale_up.stabilization, policy.scale_down.stabilization);
    let keep = up_window.max(down_window);
    let mut recommendations: Vec<Stamped> = Vec::new();
    for i in 0..DECISIONS {
        let now = step * u32::try_from(i).unwrap_or(u32::MAX);
        let desired = ((value(i) / policy.triggers[0].per_replica).ceil() as u32).min(policy.max_replicas);
        let (mut up, mut down) = (desired, desired);
        for r in &recommendations {
            if r.at + up_window > now {
                up = up.min(r.value);
            }
            if r.at + down_window > now {
                down = down.max(r.value);
            }
        }
        recommendations.retain(|r| r.at + keep > now);
        recommendations.push(Stamped { value: desired, at: now });
        black_box((up, down));
    }
}

fn main() {
    let one = policy(1);
    let three = policy(3);
    let objective = objective_policy();
    let plain = |i| Observation::value(value(i));
    let samples = [
        common::measure("bare ceil(value/per_replica) + clamp (baseline)", DECISIONS, 3, 30, || run_bare(&one)),
        common::measure("decide(): 1 trigger, poll every 15 s", DECISIONS, 3, 30, || {
            run(&one, Duration::from_secs(15), plain)
        }),
        common::measure("decide(): 1 trigger, poll every 1 s (300-entry window)", DECISIONS, 3, 30, || {
            run(&one, Duration::from_secs(1), plain)
        }),
        common::measure("decide(): 3 triggers, poll every 1 s", DECISIONS, 3, 30, || {
            run(&three, Duration::from_secs(1), plain)
        }),
        common::measure(
            "decide(): objective, 1 trigger, 16 slots × ≤ 50 replicas, every 15 s",
            DECISIONS,
            3,
            30,
            || run(&objective, Duration::from_secs(15), counted),
        ),
    ];
    common::report(&format!("policy: {DECISIONS} decisions per run"), &samples);
    for s in &samples[1..] {
        println!("{:<58} {:>12.0} decisions/s", s.name, DECISIONS as f64 / s.median().as_secs_f64());
    }

    let windows = [
        common::measure("windows by full scan, poll every 1 s (baseline)", DECISIONS, 3, 30, || {
            run_scanned_windows(&one, Duration::from_secs(1))
        }),
        common::measure("windows by full scan, poll every 15 s", DECISIONS, 3, 30, || {
            run_scanned_windows(&one, Duration::from_secs(15))
        }),
        common::measure("whole decide(), monotonic windows, poll every 1 s", DECISIONS, 3, 30, || {
            run(&one, Duration::from_secs(1))
        }),
    ];
    common::report(&format!("policy: stabilization windows, {DECISIONS} decisions per run"), &windows);
}
