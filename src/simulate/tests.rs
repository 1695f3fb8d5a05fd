use std::time::Duration;

use super::*;
use crate::config::{Simulation, SpotTarget, Target};
use crate::policy::spot::SpotPolicy;
use crate::policy::{Fallback, ScalingRules, TargetPolicy, TriggerPolicy};

fn target(min: u32, max: u32, per_replica: f64) -> Target {
    Target {
        name: "t".into(),
        namespace: "default".into(),
        deployment: "worker".into(),
        interval: Duration::from_secs(15),
        policy: TargetPolicy {
            min_replicas: min,
            max_replicas: max,
            triggers: vec![TriggerPolicy { source: "q".into(), per_replica, activation: 0.0 }],
            scale_up: ScalingRules::hpa_scale_up(),
            scale_down: ScalingRules::hpa_scale_down(),
            cooldown: Duration::ZERO,
            fallback_threshold: 3,
            fallback: Fallback::Hold,
        },
        spot: None,
        busy: None,
        simulation: None,
    }
}

fn workload(throughput: f64, startup: u64) -> Simulation {
    Simulation {
        throughput_per_replica: throughput,
        startup_delay: Duration::from_secs(startup),
        spot_interruption_rate: 0.0,
        on_demand_price: 1.0,
        spot_price: 0.4,
    }
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

#[test]
fn a_single_burst_drains_in_the_known_time() {
    // 2 replicas fixed (min = max), 5 tasks/s each: 100 tasks arriving at once take 10 s.
    let target = target(2, 2, 10.0);
    let mut arrivals = vec![0; 30];
    arrivals[0] = 100;
    let run = run(&target, &workload(5.0, 0), &arrivals, &mut Ours::new(&target), 1, true);
    let s = &run.summary;
    assert_eq!((s.wait_p50, s.wait_p95, s.wait_max), (4, 9, 9), "10 tasks start each second, oldest first");
    assert_eq!(s.peak_backlog, 90, "100 arrive, 10 start in the same second");
    assert_eq!(run.timeline.iter().position(|t| t.backlog == 0), Some(9));
    assert_eq!(s.seconds, 30);
    assert!((s.replica_hours_on_demand - 2.0 * 30.0 / 3600.0).abs() < 1e-9);
    assert_eq!((s.rescales, s.unfinished), (0, 0));
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let mut target = target(1, 30, 10.0);
    target.spot = Some(SpotTarget {
        deployment: "worker-spot".into(),
        policy: SpotPolicy { on_demand_base: 1, on_demand_percentage: 20, retry_spot_after: Duration::from_secs(600) },
        unschedulable_after: Duration::from_secs(180),
        extra_taints: vec![],
    });
    let mut sim = workload(1.5, 30);
    sim.spot_interruption_rate = 0.5;
    let arrivals = spiky(6 * 3600, 42);
    let once = |seed| run(&target, &sim, &arrivals, &mut Ours::new(&target), seed, false).summary;
    assert_eq!(once(7), once(7));
    assert!(once(7).spot_interruptions > 0, "the seeded interruptions happen");
    assert_ne!(once(7).spot_interruptions, once(8).spot_interruptions, "and depend on the seed");
    let summary = once(7);
    assert!(summary.replica_hours_spot > summary.replica_hours_on_demand, "mostly spot above the base: {summary:?}");
}

#[test]
fn ours_drives_the_daemons_policy() {
    // 431 waiting at 16 per replica: 27 wanted, capped by +4 pods from 4 at the first poll.
    let mut target = target(4, 50, 16.0);
    target.interval = Duration::from_secs(10);
    let mut ours = Ours::new(&target);
    assert_eq!(ours.decide(1, 431.0, Split { on_demand: 4, spot: 0 }), None, "not a poll second");
    assert_eq!(ours.decide(0, 431.0, Split { on_demand: 4, spot: 0 }), Some(Split { on_demand: 8, spot: 0 }));
    assert_eq!(
        ours.decide(10, 431.0, Split { on_demand: 8, spot: 0 }),
        Some(Split { on_demand: 8, spot: 0 }),
        "+4 per 15 s"
    );
    assert_eq!(ours.decide(20, 431.0, Split { on_demand: 8, spot: 0 }), Some(Split { on_demand: 16, spot: 0 }));
}

#[test]
fn the_keda_model_reproduces_the_hpas_documented_examples() {
    // k8s.md §1.6: default scale-up from 3 with huge demand → 7, 15 s later 14.
    let mut keda = Keda::new(&target(1, 100, 10.0));
    assert_eq!(keda.decide(0, 10_000.0, Split { on_demand: 3, spot: 0 }), Some(Split { on_demand: 7, spot: 0 }));
    assert_eq!(keda.decide(5, 10_000.0, Split { on_demand: 7, spot: 0 }), None, "the HPA syncs every 15 s");
    assert_eq!(keda.decide(15, 10_000.0, Split { on_demand: 7, spot: 0 }), Some(Split { on_demand: 14, spot: 0 }));
    // k8s.md §1.3: 95 messages at AverageValue 10 with 10 replicas: within the tolerance, 10 stays.
    let mut keda = Keda::new(&target(1, 100, 10.0));
    assert_eq!(keda.decide(15, 95.0, Split { on_demand: 10, spot: 0 }), Some(Split { on_demand: 10, spot: 0 }));
}

#[test]
fn the_keda_model_scales_to_zero_from_any_n_after_its_cooldown() {
    let mut keda = Keda::new(&target(0, 100, 10.0));
    assert_eq!(
        keda.decide(0, 50.0, Split { on_demand: 0, spot: 0 }),
        Some(Split { on_demand: 1, spot: 0 }),
        "0 → 1 by KEDA"
    );
    // Idle from t = 30; the last active poll was t = 0: at t = 300 the cooldown has not yet
    // passed (KEDA compares strictly), at the next poll it jumps from 6 to 0.
    assert_eq!(keda.decide(300, 0.0, Split { on_demand: 6, spot: 0 }), Some(Split { on_demand: 6, spot: 0 }));
    assert_eq!(keda.decide(330, 0.0, Split { on_demand: 6, spot: 0 }), Some(Split { on_demand: 0, spot: 0 }));
}

#[test]
fn ours_reaches_zero_through_one_where_keda_jumps() {
    // A backlog that stays at or below the activation threshold (100) while workers are still
    // busy with it: KEDA deems the target inactive and, after its cooldown, drops every replica
    // at once (kedacore/keda#7770); ours steps down through 1.
    // 10 tasks per replica, each replica doing 0.1 task/s: a backlog of ~60 keeps ~6 replicas.
    let mut target = target(0, 40, 10.0);
    target.policy.triggers[0].activation = 100.0;
    target.policy.cooldown = Duration::from_secs(60);
    let mut arrivals = vec![0; 3600];
    arrivals[0] = 200;
    arrivals.iter_mut().step_by(5).skip(1).for_each(|a| *a = 3);
    let sim = workload(0.1, 20);
    let ours = run(&target, &sim, &arrivals, &mut Ours::new(&target), 1, true);
    let keda = run(&target, &sim, &arrivals, &mut Keda::new(&target), 1, true);
    let jumps = |run: &Run| run.timeline.windows(2).filter(|w| w[0].on_demand > 1 && w[1].on_demand == 0).count();
    assert_eq!(jumps(&ours), 0, "never from N > 1 straight to 0");
    assert!(jumps(&keda) >= 1, "KEDA's cooldown drops everything at once");
    assert!(ours.timeline.windows(2).any(|w| w[0].on_demand == 1 && w[1].on_demand == 0), "it does get to 0, from 1");
}

#[test]
fn the_svg_is_xml_with_every_series() {
    let target = target(1, 20, 10.0);
    let arrivals = spiky(3600, 3);
    let sim = workload(1.0, 30);
    let ours = run(&target, &sim, &arrivals, &mut Ours::new(&target), 1, true);
    let keda = run(&target, &sim, &arrivals, &mut Keda::new(&target), 1, true);
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
    let ours = run(&target, &workload(1.0, 0), &[3, 0, 2], &mut Ours::new(&target), 1, true);
    let csv = render_csv(&ours, None);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "second,arrivals,backlog,on_demand,spot,ready");
    assert_eq!(lines.len(), 1 + ours.timeline.len());
    assert_eq!(lines[1], "0,3,2,1,0,1");
}

#[test]
fn the_keda_model_takes_the_highest_trigger() {
    let mut target = target(1, 100, 10.0);
    target.policy.triggers.push(TriggerPolicy { source: "r".into(), per_replica: 2.0, activation: 0.0 });
    let mut keda = Keda::new(&target);
    // 20 waiting: 2 replicas by the first trigger, 10 by the second; +4 pods from 3 allows 7.
    assert_eq!(keda.decide(0, 20.0, Split { on_demand: 3, spot: 0 }), Some(Split { on_demand: 7, spot: 0 }));
}
