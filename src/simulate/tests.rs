use std::time::Duration;

use super::*;
use crate::config::{Simulation, SpotTarget, Target};
use crate::policy::spot::SpotPolicy;
use crate::policy::{Fallback, Objective, ScalingRules, TargetPolicy, TriggerPolicy};

fn target(min: u32, max: u32, per_replica: f64) -> Target {
    Target {
        name: "t".into(),
        namespace: "default".into(),
        kind: crate::config::WorkloadKind::Deployment,
        workload: "worker".into(),
        interval: Duration::from_secs(15),
        policy: TargetPolicy {
            min_replicas: min,
            max_replicas: max,
            triggers: vec![TriggerPolicy { source: "q".into(), per_replica: Some(per_replica), activation: 0.0 }],
            scale_up: ScalingRules::hpa_scale_up(),
            scale_down: ScalingRules::hpa_scale_down(),
            cooldown: Duration::ZERO,
            fallback_threshold: 3,
            fallback: Fallback::Hold,
            objective: None,
        },
        spot: None,
        busy: None,
        simulation: None,
    }
}

/// The same target sized for a wait of `max_wait` seconds, with `slots` per replica.
fn with_objective(mut target: Target, max_wait: u64, slots: u32, task_seconds: f64) -> Target {
    target.policy.objective = Some(Objective {
        max_wait: Duration::from_secs(max_wait),
        slots,
        task_seconds: Some(task_seconds),
        startup: Duration::from_secs(30),
        hysteresis: Objective::DEFAULT_HYSTERESIS,
    });
    target.policy.scale_up = ScalingRules::unlimited();
    target.policy.scale_down = ScalingRules::objective_scale_down();
    target
}

fn workload(slots: u32, service_seconds: f64, startup: u64) -> Simulation {
    Simulation {
        slots,
        service_seconds,
        startup_delay: Duration::from_secs(startup),
        spot_interruption_rate: 0.0,
        on_demand_price: 1.0,
        spot_price: 0.4,
    }
}

const CELERY: [View; 1] = [View::Celery { unacked: false }];

/// The target with a spot twin: one on-demand replica, then `percentage` % on-demand.
fn with_spot(mut target: Target, percentage: u32) -> Target {
    target.spot = Some(SpotTarget {
        deployment: "worker-spot".into(),
        policy: SpotPolicy {
            on_demand_base: 1,
            on_demand_percentage: percentage,
            retry_spot_after: Duration::from_secs(600),
        },
        unschedulable_after: Duration::from_secs(180),
        extra_taints: vec![],
    });
    target
}

fn simulate(target: &Target, sim: &Simulation, arrivals: &[u64], scaler: &mut dyn Scaler, timeline: bool) -> Run {
    let durations = vec![None; arrivals.len()];
    let workload = Workload { arrivals, durations: &durations, views: &CELERY };
    run(target, sim, &workload, scaler, 1, timeline)
}

/// A reproducible, spiky trace of `seconds` (the examples' generator is the real one).
fn spiky(seconds: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    (0..seconds)
        .map(|t| {
            let base = rng.poisson(2.0) as u64;
            if (t / 600) % 4 == 1 { base + rng.poisson(0.5) as u64 * 40 } else { base }
        })
        .collect()
}

fn poll(value: f64) -> Poll {
    Poll {
        samples: vec![View::Celery { unacked: false }.sample(&World { waiting: value as u64, ..World::default() })],
        ready: 0,
    }
}

#[test]
fn a_single_burst_drains_at_the_slots_pace() {
    // 2 replicas fixed (min = max) of 5 slots, tasks of 1 s on average: 100 arriving at once
    // start ~10 a second, so the last of them waits ~10 s.
    let target = target(2, 2, 10.0);
    let mut arrivals = vec![0; 60];
    arrivals[0] = 100;
    let run = simulate(&target, &workload(5, 1.0, 0), &arrivals, &mut Ours::new(&target), true);
    let s = &run.summary;
    assert_eq!((s.tasks, s.rescales, s.unfinished), (100, 0, 0));
    assert!(s.peak_backlog <= 90, "the 10 free slots start at least 10 at once: {s:?}");
    assert!((6..=16).contains(&s.wait_max), "~100 s of work on 10 slots: {s:?}");
    assert!((s.replica_hours_on_demand - 2.0 * s.seconds as f64 / 3600.0).abs() < 1e-9);
    // ~100 task-seconds of work on 10 slots paid for the run: utilization is that ratio.
    let expected = 100.0 / (10.0 * s.seconds as f64);
    assert!((s.utilization - expected).abs() < 0.3 * expected, "{} vs {expected}", s.utilization);
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let target = with_spot(target(1, 30, 10.0), 20);
    let mut sim = workload(1, 0.66, 30);
    sim.spot_interruption_rate = 0.5;
    let arrivals = spiky(6 * 3600, 42);
    let durations = vec![None; arrivals.len()];
    let workload = Workload { arrivals: &arrivals, durations: &durations, views: &CELERY };
    let once = |seed| run(&target, &sim, &workload, &mut Ours::new(&target), seed, false).summary;
    assert_eq!(once(7), once(7));
    assert!(once(7).spot_interruptions > 0, "the seeded interruptions happen");
    assert_ne!(once(7).spot_interruptions, once(8).spot_interruptions, "and depend on the seed");
    let summary = once(7);
    assert!(summary.replica_hours_spot > summary.replica_hours_on_demand, "mostly spot above the base: {summary:?}");
    assert_eq!(summary.unfinished, 0, "interrupted tasks are queued again and served");
}

#[test]
fn ours_drives_the_daemons_policy() {
    // 431 waiting at 16 per replica: 27 wanted, capped by +4 pods from 4 at the first poll.
    let mut target = target(4, 50, 16.0);
    target.interval = Duration::from_secs(10);
    let mut ours = Ours::new(&target);
    assert!(!ours.due(1), "not a poll second");
    assert_eq!(ours.decide(0, &poll(431.0), Split { on_demand: 4, spot: 0 }), Some(Split { on_demand: 8, spot: 0 }));
    assert_eq!(
        ours.decide(10, &poll(431.0), Split { on_demand: 8, spot: 0 }),
        Some(Split { on_demand: 8, spot: 0 }),
        "+4 per 15 s"
    );
    assert_eq!(ours.decide(20, &poll(431.0), Split { on_demand: 8, spot: 0 }), Some(Split { on_demand: 16, spot: 0 }));
}

#[test]
fn the_keda_model_follows_the_hpas_legacy_path() {
    // KEDA's HPA has no behavior: at most max(2 × current, 4) per sync.
    let mut keda = Keda::new(&target(1, 100, 10.0), None);
    assert_eq!(keda.decide(0, &poll(10_000.0), Split { on_demand: 3, spot: 0 }), Some(Split { on_demand: 6, spot: 0 }));
    assert!(!keda.due(5), "the HPA syncs every 15 s");
    assert_eq!(
        keda.decide(15, &poll(10_000.0), Split { on_demand: 6, spot: 0 }),
        Some(Split { on_demand: 12, spot: 0 })
    );
    // 95 messages at AverageValue 10 with 10 replicas: within the tolerance, 10 stays.
    let mut keda = Keda::new(&target(1, 100, 10.0), None);
    assert_eq!(keda.decide(15, &poll(95.0), Split { on_demand: 10, spot: 0 }), Some(Split { on_demand: 10, spot: 0 }));
}

#[test]
fn the_keda_model_scales_to_zero_from_any_n_after_its_cooldown() {
    let mut keda = Keda::new(&target(0, 100, 10.0), None);
    assert_eq!(keda.decide(0, &poll(50.0), Split { on_demand: 0, spot: 0 }), Some(Split { on_demand: 1, spot: 0 }));
    // Idle from t = 30; the last active poll was t = 0: at t = 300 the cooldown has not yet
    // passed (KEDA compares strictly), at the next poll it jumps from 6 to 0.
    assert_eq!(keda.decide(300, &poll(0.0), Split { on_demand: 6, spot: 0 }), Some(Split { on_demand: 6, spot: 0 }));
    assert_eq!(keda.decide(330, &poll(0.0), Split { on_demand: 6, spot: 0 }), Some(Split { on_demand: 0, spot: 0 }));
}

#[test]
fn ours_and_the_independent_keda_model_agree_where_their_rules_agree() {
    // The daemon configured as KEDA's HPA (per_replica, a 300 s window, no cooldown, min ≥ 1)
    // and the model written from the upstream controller, on the same scripted values at the
    // HPA's sync points: from 4 replicas both double per sync (max(2c, 4) and max(c + 4, 2c)
    // agree from 4 on), hold through the window, then go straight down.
    let target = target(1, 100, 10.0);
    let (mut ours, mut keda) = (Ours::new(&target), Keda::new(&target, None));
    let script = [(0, 400.0), (15, 400.0), (30, 400.0), (45, 400.0), (60, 50.0), (180, 50.0), (375, 50.0), (390, 50.0)];
    let (mut a, mut b) = (4u32, 4u32);
    let mut both = Vec::new();
    for (t, value) in script {
        a = ours.decide(t, &poll(value), Split { on_demand: a, spot: 0 }).map_or(a, |s| s.total());
        b = keda.decide(t, &poll(value), Split { on_demand: b, spot: 0 }).map_or(b, |s| s.total());
        both.push((t, a, b));
    }
    assert!(both.iter().all(|(_, a, b)| a == b), "{both:?}");
    assert_eq!(both.last().map(|x| x.1), Some(5), "down to ceil(50 / 10) after the window: {both:?}");
}

#[test]
fn ours_reaches_zero_through_one_where_keda_jumps() {
    // A backlog that stays at or below the activation threshold (100) while workers are still
    // busy with it: KEDA deems the target inactive and, after its cooldown, drops every replica
    // at once (kedacore/keda#7770); ours steps down through 1.
    let mut target = target(0, 40, 10.0);
    target.policy.triggers[0].activation = 100.0;
    target.policy.cooldown = Duration::from_secs(60);
    let mut arrivals = vec![0; 3600];
    arrivals[0] = 200;
    arrivals.iter_mut().step_by(5).skip(1).for_each(|a| *a = 3);
    let sim = workload(1, 10.0, 20);
    let ours = simulate(&target, &sim, &arrivals, &mut Ours::new(&target), true);
    let keda = simulate(&target, &sim, &arrivals, &mut Keda::new(&target, None), true);
    let jumps = |run: &Run| run.timeline.windows(2).filter(|w| w[0].on_demand > 1 && w[1].on_demand == 0).count();
    assert_eq!(jumps(&ours), 0, "never from N > 1 straight to 0");
    assert!(jumps(&keda) >= 1, "KEDA's cooldown drops everything at once");
}

#[test]
fn with_an_objective_steady_load_costs_what_it_needs() {
    // 4 tasks/s of 5 s tasks (20 busy slots) on 4-slot replicas, arriving evenly: the queue is
    // ~empty, so KEDA's ratio reads ~0 waiting and flaps; the objective keeps ~6 replicas.
    let base = with_objective(target(1, 30, 4.0), 30, 4, 5.0);
    let arrivals: Vec<u64> = (0..3 * 3600).map(|t| if t % 2 == 0 { 8 } else { 0 }).collect();
    let sim = workload(4, 5.0, 30);
    let ours = simulate(&base, &sim, &arrivals, &mut Ours::new(&base), true);
    let keda = simulate(&base, &sim, &arrivals, &mut Keda::new(&base, None), true);
    let (o, k) = (&ours.summary, &keda.summary);
    assert!(o.wait_p95 <= 30, "the objective holds: {o:?}");
    assert!(o.utilization > k.utilization, "ours {} vs KEDA {}", o.utilization, k.utilization);
    assert!(o.rescales < k.rescales, "no flapping: {} vs {}", o.rescales, k.rescales);
}

#[test]
fn the_arrival_estimate_is_compared_with_the_true_rate() {
    let target = with_objective(target(1, 30, 4.0), 30, 4, 5.0);
    let arrivals: Vec<u64> = (0..3600).map(|t| if t % 2 == 0 { 8 } else { 0 }).collect();
    let durations = vec![None; arrivals.len()];
    let views = [View::Kafka];
    let replay = Workload { arrivals: &arrivals, durations: &durations, views: &views };
    let run = run(&target, &workload(4, 5.0, 30), &replay, &mut Ours::new(&target), 1, true);
    let error = run.summary.arrival_rate_error.expect("ours estimates a rate");
    assert!(error < 0.1, "a Kafka view counts arrivals: {error}");
    assert!(run.timeline.iter().any(|s| s.arrival_estimate.is_some()));
    let keda = simulate(&target, &workload(4, 5.0, 30), &arrivals, &mut Keda::new(&target, None), false);
    assert_eq!(keda.summary.arrival_rate_error, None, "KEDA estimates none");
}

#[test]
fn the_svg_is_xml_with_every_series() {
    let target = target(1, 20, 10.0);
    let arrivals = spiky(3600, 3);
    let sim = workload(1, 1.0, 30);
    let ours = simulate(&target, &sim, &arrivals, &mut Ours::new(&target), true);
    let keda = simulate(&target, &sim, &arrivals, &mut Keda::new(&target, None), true);
    let svg = render_svg("t & <example>", &ours, Some(&keda));
    let document = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let ids: Vec<&str> = document.descendants().filter_map(|n| n.attribute("id")).collect();
    for id in [
        "arrivals",
        "replicas-on-demand",
        "replicas-spot",
        "backlog",
        "baseline-backlog",
        "baseline-replicas",
        "legend",
    ] {
        assert!(ids.contains(&id), "{id} missing: {ids:?}");
    }
    let texts: Vec<&str> = document.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.contains(&"t & <example>"), "the title, escaped and parsed back");
    assert!(texts.contains(&"replicas") && texts.contains(&"time since the start of the trace"), "axes are labelled");
    let baseline = document.descendants().find(|n| n.attribute("id") == Some("baseline-replicas")).unwrap();
    assert_eq!(baseline.attribute("stroke-dasharray"), Some("6 4"), "the baseline is dashed");
}

#[test]
fn csv_has_one_row_per_second() {
    let target = target(1, 5, 10.0);
    let ours = simulate(&target, &workload(1, 0.5, 0), &[3, 0, 2], &mut Ours::new(&target), true);
    let csv = render_csv(&ours, None);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "second,arrivals,backlog,on_demand,spot,ready,running,arrival_estimate");
    assert_eq!(lines.len(), 1 + ours.timeline.len());
    assert!(lines[1].starts_with("0,3,"), "{}", lines[1]);
}

#[test]
fn the_keda_model_takes_the_highest_trigger() {
    let mut target = target(1, 100, 10.0);
    target.policy.triggers.push(TriggerPolicy { source: "r".into(), per_replica: Some(2.0), activation: 0.0 });
    let mut keda = Keda::new(&target, None);
    // 20 waiting: 2 replicas by the first trigger, 10 by the second; max(2 × 3, 4) allows 6.
    let sample = View::Celery { unacked: false }.sample(&World { waiting: 20, ..World::default() });
    let poll = Poll { samples: vec![sample, sample], ready: 3 };
    assert_eq!(keda.decide(0, &poll, Split { on_demand: 3, spot: 0 }), Some(Split { on_demand: 6, spot: 0 }));
}

#[test]
fn keda_gets_the_same_spot_placement_so_the_gap_is_the_decision() {
    let target = with_spot(target(1, 30, 10.0), 0);
    let arrivals = spiky(2 * 3600, 5);
    let sim = workload(1, 1.0, 30);
    let keda = simulate(&target, &sim, &arrivals, &mut Keda::new(&target, None), false);
    assert!(keda.summary.replica_hours_spot > 0.0, "KEDA's totals are placed like ours: {:?}", keda.summary);
    assert!(keda.summary.cost < keda.summary.cost_all_on_demand);
}

#[test]
fn keda_tuned_finds_the_cheapest_setting_that_meets_the_wait() {
    let target = with_objective(target(1, 30, 4.0), 60, 4, 5.0);
    let arrivals: Vec<u64> = (0..2 * 3600).map(|t| if t % 2 == 0 { 8 } else { 0 }).collect();
    let durations = vec![None; arrivals.len()];
    let replay = Workload { arrivals: &arrivals, durations: &durations, views: &CELERY };
    let sim = workload(4, 5.0, 30);
    let tuned = tune_keda(&target, &sim, &replay, 60, 1);
    assert!(tuned.meets && tuned.run.summary.wait_p95 <= 60, "{:?}", tuned.run.summary);
    // A setting twice as large breaks the objective, or costs no less.
    let mut larger = Keda::new(&target, Some(tuned.per_replica * 2.0));
    let larger = run(&target, &sim, &replay, &mut larger, 1, false).summary;
    assert!(larger.wait_p95 > 60 || larger.replica_hours() >= tuned.run.summary.replica_hours());
    // An objective no setting meets says so, and shows the closest.
    let strict = tune_keda(&target, &sim, &replay, 1, 1);
    assert!(!strict.meets && strict.run.summary.wait_p95 > 1);
}

#[test]
fn a_percent_only_scale_up_from_zero_serves_its_tasks() {
    // 100 % of 0 is 0: this target used to stay at 0 and report short waits for tasks never
    // served. The first replica now always comes, and unserved tasks count with their waits.
    let mut target = target(0, 10, 10.0);
    target.policy.scale_up.policies = vec![crate::policy::RatePolicy {
        unit: crate::policy::RateUnit::Percent,
        value: 100,
        period: Duration::from_secs(15),
    }];
    let arrivals: Vec<u64> = (0..1800).map(|t| u64::from(t % 10 == 0)).collect();
    let run = simulate(&target, &workload(1, 2.0, 30), &arrivals, &mut Ours::new(&target), false);
    assert_eq!(run.summary.unfinished, 0, "{:?}", run.summary);
    assert!(run.summary.replica_hours() > 0.0);
    let mut stuck = target.clone();
    stuck.policy.max_replicas = 0;
    stuck.policy.min_replicas = 0;
    let never = simulate(&stuck, &workload(1, 2.0, 30), &arrivals, &mut Ours::new(&stuck), false);
    assert!(never.summary.unfinished > 0 && never.summary.wait_p50 > 3600, "never served: {:?}", never.summary);
}
