//! `simulate`: replay an arrivals trace through the daemon's own policy in virtual time, at 1 s
//! resolution, and beside it a model of KEDA + HPA defaults.
//!
//! ```text
//! each second: arrivals join the backlog → the ready replicas serve it (FIFO) → at the target's
//! poll interval the scaler sees the backlog and sets replicas → new replicas are ready after the
//! start-up delay; spot replicas are interrupted at the configured rate and replaced
//! ```

mod model;
mod output;
mod scalers;
mod svg;
mod trace;

pub use output::{render_csv, render_table, summary_json};
pub use scalers::{Keda, Ours, Scaler};
pub use svg::render_svg;
pub use trace::{Trace, TraceError};

use crate::config::{Simulation, Target};
use crate::policy::spot::Split;
use model::{Backlog, Fleet};

/// After the trace ends, how long the simulation may go on draining the backlog.
const MAX_DRAIN_SECONDS: u64 = 24 * 3600;

/// What one run of a trace produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub seconds: u64,
    pub tasks: u64,
    /// Tasks still waiting when the run stopped (only if the drain limit was hit).
    pub unfinished: u64,
    pub replica_hours_on_demand: f64,
    pub replica_hours_spot: f64,
    pub cost: f64,
    pub wait_p50: u64,
    pub wait_p95: u64,
    pub wait_max: u64,
    pub peak_backlog: u64,
    /// Seconds at which the scaler changed the replicas.
    pub rescales: u64,
    pub spot_interruptions: u64,
}

/// One second of a run, for `--csv` and `--svg`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub arrivals: u64,
    pub backlog: u64,
    pub on_demand: u32,
    pub spot: u32,
    pub ready: u32,
}

/// A run: the summary, and the per-second timeline when asked for.
#[derive(Debug, Clone)]
pub struct Run {
    pub summary: Summary,
    pub timeline: Vec<Sample>,
}

/// Runs `arrivals` (tasks per second) through `scaler` for `target`, with the workload model of
/// `sim`; `seed` drives the spot interruptions, so a run is reproducible.
pub fn run(
    target: &Target,
    sim: &Simulation,
    arrivals: &[u64],
    scaler: &mut dyn Scaler,
    seed: u64,
    timeline: bool,
) -> Run {
    let start = Split { on_demand: target.policy.min_replicas, spot: 0 };
    let mut fleet = Fleet::ready_with(start);
    let mut backlog = Backlog::default();
    let mut rng = SplitMix64::new(seed);
    let delay = sim.startup_delay.as_secs();
    let interruptions_per_second = sim.spot_interruption_rate / 3600.0;
    let end = arrivals.len() as u64;
    let (mut od_seconds, mut spot_seconds) = (0u64, 0u64);
    let (mut peak, mut rescales, mut interrupted) = (0u64, 0u64, 0u64);
    let mut samples = Vec::with_capacity(if timeline { arrivals.len() } else { 0 });
    let mut t = 0u64;
    while t < end || (!backlog.is_empty() && t < end + MAX_DRAIN_SECONDS) {
        let arriving = arrivals.get(t as usize).copied().unwrap_or(0);
        backlog.arrive(t, arriving);
        fleet.promote(t);
        let lost = rng.poisson(f64::from(fleet.ready_spot()) * interruptions_per_second);
        fleet.interrupt_spot(t, lost, delay);
        interrupted += u64::from(lost);
        backlog.serve(t, f64::from(fleet.ready()) * sim.throughput_per_replica);
        if let Some(wanted) = scaler.decide(t, backlog.len() as f64, fleet.provisioned()) {
            rescales += u64::from(fleet.scale_to(t, wanted, delay));
        }
        let provisioned = fleet.provisioned();
        od_seconds += u64::from(provisioned.on_demand);
        spot_seconds += u64::from(provisioned.spot);
        peak = peak.max(backlog.len());
        if timeline {
            samples.push(Sample {
                arrivals: arriving,
                backlog: backlog.len(),
                on_demand: provisioned.on_demand,
                spot: provisioned.spot,
                ready: fleet.ready(),
            });
        }
        t += 1;
    }
    let (od_hours, spot_hours) = (od_seconds as f64 / 3600.0, spot_seconds as f64 / 3600.0);
    let summary = Summary {
        seconds: t,
        tasks: arrivals.iter().sum(),
        unfinished: backlog.len(),
        replica_hours_on_demand: od_hours,
        replica_hours_spot: spot_hours,
        cost: od_hours * sim.on_demand_price + spot_hours * sim.spot_price,
        wait_p50: backlog.wait_quantile(0.5),
        wait_p95: backlog.wait_quantile(0.95),
        wait_max: backlog.wait_max(),
        peak_backlog: peak,
        rescales,
        spot_interruptions: interrupted,
    };
    Run { summary, timeline: samples }
}

/// A small, seeded PRNG (SplitMix64): reproducible runs, and traces, without a dependency.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson draw: Knuth's method for small λ, a rounded normal approximation above 30.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            // Box–Muller; fraction() < 1, so 1 - u > 0 and the logarithm is finite.
            let (u, v) = (self.fraction(), self.fraction());
            let normal = (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            return (lambda + normal * lambda.sqrt()).round().max(0.0) as u32;
        }
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0u32, self.fraction());
        while p > limit && k < 1000 {
            k += 1;
            p *= self.fraction();
        }
        k
    }
}

#[cfg(test)]
mod tests;
