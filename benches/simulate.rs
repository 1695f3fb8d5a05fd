//! A week at 1 s resolution (604,800 steps) for one target: the simulation with the daemon's
//! policy and with the KEDA model, beside the model alone at fixed replicas (the floor).
//!
//! `cargo bench --bench simulate`

mod common;

use queue_autoscaler::config::Config;
use queue_autoscaler::policy::spot::Split;
use queue_autoscaler::simulate::{self, Keda, Ours, Poll, Scaler, SplitMix64, View, Workload};

const WEEK: usize = 7 * 24 * 3600;

/// Never changes the replicas: what the queue and fleet model cost alone.
struct Fixed;

impl Scaler for Fixed {
    fn due(&self, _: u64) -> bool {
        false
    }

    fn decide(&mut self, _: u64, _: &Poll, _: Split) -> Option<Split> {
        None
    }
}

fn main() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    let config = Config::parse(&text, [("POD_NAMESPACE".to_owned(), "bench".to_owned())]).expect("example config");
    let target = config.targets.iter().find(|t| t.name == "celery-workers").expect("celery-workers");
    let sim = target.simulation.as_ref().expect("a simulation block");
    // The same target polled every second: a decision per step, a 300-entry scale-down window.
    let mut every_second = target.clone();
    every_second.interval = std::time::Duration::from_secs(1);
    // A week of a spiky web-app queue (the bundled trace's shape, seeded).
    let mut rng = SplitMix64::new(11);
    let arrivals: Vec<u64> = (0..WEEK)
        .map(|t| {
            let base = 6.0 + 3.0 * (std::f64::consts::TAU * t as f64 / 10_800.0).sin();
            let spike = if (t / 300) % 7 == 3 { 10.0 } else { 1.0 };
            u64::from(rng.poisson(base * spike))
        })
        .collect();
    let durations = vec![None; arrivals.len()];
    let views = [View::Celery { unacked: true }];
    let workload = Workload { arrivals: &arrivals, durations: &durations, views: &views };
    let steps = WEEK as u64;
    let samples = [
        common::measure("model alone, fixed replicas (baseline)", steps, 1, 10, || {
            std::hint::black_box(simulate::run(target, sim, &workload, &mut Fixed, 1, false));
        }),
        common::measure("with the daemon's policy (and spot split)", steps, 1, 10, || {
            std::hint::black_box(simulate::run(target, sim, &workload, &mut Ours::new(target), 1, false));
        }),
        common::measure("with the KEDA + HPA model", steps, 1, 10, || {
            std::hint::black_box(simulate::run(target, sim, &workload, &mut Keda::new(target, None), 1, false));
        }),
        common::measure("with the daemon's policy, timeline kept (--csv/--svg)", steps, 1, 10, || {
            std::hint::black_box(simulate::run(target, sim, &workload, &mut Ours::new(target), 1, true));
        }),
        common::measure("with the daemon's policy, polling every 1 s (worst case)", steps, 1, 10, || {
            std::hint::black_box(simulate::run(&every_second, sim, &workload, &mut Ours::new(&every_second), 1, false));
        }),
    ];
    common::report("simulate: one week at 1 s resolution (604,800 steps), one target", &samples);
}
