//! Properties of the pure policy and the config parser, over generated inputs (proptest):
//! bounds always hold, a failed observation never lowers the replicas, and no input panics —
//! not NaN, not infinities, not negative depths, not counters that go backwards, not any text.

use std::time::Duration;

use proptest::prelude::*;
use queue_autoscaler::config::Config;
use queue_autoscaler::policy::{
    Fallback, History, Inputs, Load, Objective, Observation, Pause, RatePolicy, RateUnit, Runtimes, Sample,
    ScalingRules, Select, TargetPolicy, TriggerPolicy, decide,
};

/// Any f64 a broken or hostile source could hand over, and ordinary ones.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..10_000.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => -1_000.0..0.0f64,
        1 => Just(f64::MAX),
    ]
}

fn load() -> impl Strategy<Value = Load> {
    (
        any_value(),
        proptest::option::of(any_value()),
        proptest::option::of(0u64..1_000_000),
        proptest::option::of(0u64..1_000_000),
        proptest::option::of((0u64..10_000, any_value())),
    )
        .prop_map(|(waiting, in_flight, arrived, completed, runtimes)| Load {
            waiting,
            in_flight,
            arrived,
            completed,
            runtimes: runtimes.map(|(tasks, seconds)| Runtimes { tasks, seconds }),
        })
}

/// An observation: mostly answers (with a load, a partition cap), sometimes a failed poll.
fn observation() -> impl Strategy<Value = Observation> {
    prop_oneof![
        4 => (any_value(), proptest::option::of(0u32..64), any::<bool>(), load())
            .prop_map(|(value, cap, even, load)| Observation::Answered(Sample { value, cap, even, load })),
        1 => Just(Observation::Failed),
    ]
}

fn rules() -> impl Strategy<Value = ScalingRules> {
    let policy = (prop_oneof![Just(RateUnit::Pods), Just(RateUnit::Percent)], 1u32..200, 1u64..600)
        .prop_map(|(unit, value, period)| RatePolicy { unit, value, period: Duration::from_secs(period) });
    (0u64..600, proptest::collection::vec(policy, 0..3), prop_oneof![Just(Select::Max), Just(Select::Min)]).prop_map(
        |(window, policies, select)| ScalingRules { stabilization: Duration::from_secs(window), policies, select },
    )
}

fn objective() -> impl Strategy<Value = Objective> {
    (1u64..3_600, 1u32..64, proptest::option::of(0.01..600.0f64), 0u64..600, 0.0..0.5f64).prop_map(
        |(max_wait, slots, task_seconds, startup, hysteresis)| Objective {
            max_wait: Duration::from_secs(max_wait),
            slots,
            task_seconds,
            startup: Duration::from_secs(startup),
            hysteresis,
        },
    )
}

/// A valid target: min ≤ max, 1–3 triggers, any behavior, with or without an objective.
fn target() -> impl Strategy<Value = TargetPolicy> {
    (
        0u32..5,
        0u32..50,
        proptest::collection::vec((proptest::option::of(0.1..1_000.0f64), 0.0..50.0f64), 1..4),
        rules(),
        rules(),
        0u64..600,
        1u32..5,
        prop_oneof![Just(Fallback::Hold), (0u32..60).prop_map(Fallback::Replicas)],
        proptest::option::of(objective()),
    )
        .prop_map(|(min, extra, triggers, scale_up, scale_down, cooldown, threshold, fallback, objective)| {
            let triggers = triggers
                .into_iter()
                .enumerate()
                // Without an objective a trigger needs a ratio, as `validate` demands.
                .map(|(i, (per_replica, activation))| TriggerPolicy {
                    source: format!("s{i}"),
                    per_replica: if objective.is_none() { Some(per_replica.unwrap_or(1.0)) } else { per_replica },
                    activation,
                })
                .collect();
            TargetPolicy {
                min_replicas: min,
                max_replicas: (min + extra).max(1),
                triggers,
                scale_up,
                scale_down,
                cooldown: Duration::from_secs(cooldown),
                fallback_threshold: threshold,
                fallback,
                objective,
            }
        })
}

/// Polls every 1–60 s, each with one observation per trigger (cycled over the generated ones).
fn run() -> impl Strategy<Value = (TargetPolicy, u32, Vec<(u64, Vec<Observation>)>)> {
    (target(), 0u32..60, proptest::collection::vec((1u64..60, proptest::collection::vec(observation(), 1..4)), 1..60))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the sources say, and wherever the Deployment starts, each decision is within
    /// [min, max]; and the daemon only ever writes what was decided.
    #[test]
    fn bounds_always_hold((policy, start, polls) in run()) {
        let mut history = History::new();
        let (mut current, mut now) = (start, Duration::ZERO);
        for (step, observations) in polls {
            now += Duration::from_secs(step);
            let observations: Vec<_> = (0..policy.triggers.len()).map(|i| observations[i % observations.len()]).collect();
            let inputs = Inputs { current, ready: Some(current), observations: &observations, pause: Pause::None, now };
            let decision = decide(&policy, &mut history, &inputs);
            prop_assert!(
                (policy.min_replicas..=policy.max_replicas).contains(&decision.replicas),
                "{} outside [{}, {}]: {}", decision.replicas, policy.min_replicas, policy.max_replicas, decision.reason
            );
            if decision.should_write(current) {
                history.record_rescale(&policy, current, decision.replicas, now);
                current = decision.replicas;
            }
        }
    }

    /// A poll that failed never lowers the replicas: not in the cycle it failed, whatever the
    /// other triggers say, unless a bound forces it or the user chose a fallback count
    /// (then never below that count).
    #[test]
    fn a_failed_observation_never_lowers_replicas((policy, start, polls) in run()) {
        let mut history = History::new();
        let (mut current, mut now) = (start.clamp(policy.min_replicas, policy.max_replicas), Duration::ZERO);
        for (step, observations) in polls {
            now += Duration::from_secs(step);
            let observations: Vec<_> = (0..policy.triggers.len()).map(|i| observations[i % observations.len()]).collect();
            let inputs = Inputs { current, ready: Some(current), observations: &observations, pause: Pause::None, now };
            let decision = decide(&policy, &mut history, &inputs);
            if observations.iter().any(|o| matches!(o, Observation::Failed)) {
                let floor = match policy.fallback {
                    Fallback::Hold => current,
                    Fallback::Replicas(n) => current.min(n.clamp(policy.min_replicas, policy.max_replicas)),
                };
                prop_assert!(decision.replicas >= floor, "{current} → {} on a failed poll: {}", decision.replicas, decision.reason);
            }
            if decision.should_write(current) {
                history.record_rescale(&policy, current, decision.replicas, now);
                current = decision.replicas;
            }
        }
    }

    /// Any text at all: the parser answers Ok or an error, never a panic.
    #[test]
    fn no_text_panics_the_config_parser(text in ".{0,400}") {
        let _ = Config::parse(&text, std::iter::empty());
    }

    /// Text shaped like the config, with keys and values shuffled from its vocabulary: reaches
    /// far deeper into validation than random text.
    #[test]
    fn no_config_shaped_text_panics_the_parser(lines in proptest::collection::vec(config_line(), 0..30)) {
        let text = lines.join("\n");
        let _ = Config::parse(&text, std::iter::empty());
    }
}

fn config_line() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just("[daemon]"),
        Just("[sources.q]"),
        Just("[[targets]]"),
        Just("[targets.scale_up]"),
        Just("[targets.scale_down]"),
        Just("[targets.objective]"),
        Just("[targets.fallback]"),
        Just("[targets.spot]"),
        Just("[daemon.leader_election]"),
    ]
    .prop_map(str::to_owned);
    let key = prop_oneof![
        Just("interval"),
        Just("kind"),
        Just("url"),
        Just("queues"),
        Just("name"),
        Just("namespace"),
        Just("deployment"),
        Just("min_replicas"),
        Just("max_replicas"),
        Just("triggers"),
        Just("max_wait"),
        Just("slots"),
        Just("task_seconds"),
        Just("startup"),
        Just("stabilization"),
        Just("policies"),
        Just("cooldown"),
        Just("lease_duration"),
        Just("retry_period"),
        Just("timeout"),
        Just("replicas"),
        Just("failure_threshold"),
        Just("events"),
        Just("on_demand_base"),
        Just("on_demand_percentage"),
    ];
    let value = prop_oneof![
        Just("\"celery\"".to_owned()),
        Just("\"kafka\"".to_owned()),
        Just("\"airflow\"".to_owned()),
        Just("\"redis://127.0.0.1:6379/0\"".to_owned()),
        Just("[\"a\", \"b\"]".to_owned()),
        Just("[{ source = \"q\", per_replica = 10 }]".to_owned()),
        Just("[{ source = \"q\" }]".to_owned()),
        Just("[{ type = \"percent\", value = 100, period = \"15s\" }]".to_owned()),
        Just("true".to_owned()),
        Just("\"hold\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        "[0-9]{1,25}(ns|ms|s|m|h|d)".prop_map(|d| format!("\"{d}\"")),
    ];
    prop_oneof![1 => header, 4 => (key, value).prop_map(|(k, v)| format!("{k} = {v}"))]
}
