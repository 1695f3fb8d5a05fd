//! `--baseline keda-tuned`: what a careful KEDA user would have configured — the `per_replica`
//! (KEDA's target value) with the fewest replica-hours whose p95 wait stays within the objective.
//!
//! A geometric sweep (×2 from 1/4 to 4096), then a bisection (in the logarithm) between the
//! largest setting that met the objective and the next, which did not: a larger `per_replica`
//! means fewer replicas and longer waits, so the cheapest setting that meets it sits there.

use super::{Keda, Run, Workload, run};
use crate::config::{Simulation, Target};

/// The sweep's settings: `per_replica` = 2^k / 4 for k in 0..=14.
const SWEEP: std::ops::RangeInclusive<i32> = -2..=12;
/// Bisection steps between the last setting that met the objective and the first that did not.
const REFINE: usize = 5;

/// The best KEDA setting found, and its run.
#[derive(Debug, Clone)]
pub struct Tuned {
    pub per_replica: f64,
    pub run: Run,
    /// Whether its p95 wait is within the objective (when none is, the setting with the shortest
    /// p95 wait is reported).
    pub meets: bool,
}

/// Sweeps KEDA's `per_replica` for `target` on `workload`; `max_wait` in seconds.
pub fn tune_keda(target: &Target, sim: &Simulation, workload: &Workload, max_wait: u64, seed: u64) -> Tuned {
    let try_one = |per_replica: f64| {
        let mut keda = Keda::new(target, Some(per_replica));
        (per_replica, run(target, sim, workload, &mut keda, seed, false))
    };
    let settings: Vec<f64> = SWEEP.map(|k| 2f64.powi(k)).collect();
    let mut tried = in_parallel(&settings, &try_one);
    let meets = |r: &Run| r.summary.wait_p95 <= max_wait && r.summary.unfinished == 0;
    if let Some(largest) = tried.iter().filter(|(_, r)| meets(r)).map(|(p, _)| *p).reduce(f64::max) {
        let (mut low, mut high) = (largest, largest * 2.0);
        for _ in 0..REFINE {
            let middle = (low * high).sqrt();
            let (p, r) = try_one(middle);
            if meets(&r) {
                low = p
            } else {
                high = p
            }
            tried.push((p, r));
        }
    }
    let best = tried
        .iter()
        .filter(|(_, r)| meets(r))
        .min_by(|a, b| a.1.summary.replica_hours().total_cmp(&b.1.summary.replica_hours()).then(b.0.total_cmp(&a.0)));
    match best {
        Some((per_replica, run)) => Tuned { per_replica: *per_replica, run: run.clone(), meets: true },
        None => {
            let shortest = tried.into_iter().min_by_key(|(p, r)| (r.summary.wait_p95, (p * 1e6) as u64));
            // Empty only if every sweep thread died; then one run of the smallest setting.
            let (per_replica, run) = shortest.unwrap_or_else(|| try_one(settings[0]));
            Tuned { per_replica, run, meets: false }
        }
    }
}

/// Runs `one` on every setting, on as many threads as the machine has (runs are independent).
fn in_parallel(settings: &[f64], one: &(dyn Fn(f64) -> (f64, Run) + Sync)) -> Vec<(f64, Run)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(settings.len()).max(1);
    let chunk = settings.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = settings
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|p| one(*p)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}
