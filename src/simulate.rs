//! `simulate`: replay an arrivals trace through the daemon's own policy in virtual time, at 1 s
//! resolution, and beside it a model of KEDA + HPA defaults.
//!
//! ```text
//! each second: replicas whose start-up ended take tasks → spot replicas are interrupted (their
//! running tasks go back to the head of the queue) → arrivals join the FIFO queue, each with a
//! duration → free slots start tasks → when the scaler is due, each trigger reports what its
//! source kind would see (views.rs) and the scaler sets the replicas → new replicas are ready
//! after the start-up delay, removed ones finish their tasks first (paid until then)
//! ```

mod fleet;
pub mod hpa;
mod output;
mod queue;
mod scalers;
mod svg;
mod trace;
mod tuned;
mod views;

pub use output::{Compared, closing_line, render_csv, render_table, summary_json};
pub use scalers::{Keda, Ours, Poll, Scaler};
pub use svg::render_svg;
pub use trace::{Trace, TraceError};
pub use tuned::{Tuned, tune_keda};
pub use views::{View, World};

use crate::config::{Simulation, Target};
use crate::policy::load::SMOOTHING;
use crate::policy::spot::Split;
use fleet::Fleet;
use queue::{Queue, Task};

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
    /// The same replica-hours all priced on-demand: the cost without the spot placement.
    pub cost_all_on_demand: f64,
    pub wait_p50: u64,
    pub wait_p95: u64,
    pub wait_max: u64,
    pub peak_backlog: u64,
    /// Seconds at which the scaler changed the replicas.
    pub rescales: u64,
    pub spot_interruptions: u64,
    /// Busy slot-seconds over paid slot-seconds: the work done over the worker time paid for.
    pub utilization: f64,
    /// How far the scaler's arrival-rate estimate was from the true rate (the mean absolute error
    /// over the mean rate, both smoothed alike), where it estimates one.
    pub arrival_rate_error: Option<f64>,
}

impl Summary {
    pub fn replica_hours(&self) -> f64 {
        self.replica_hours_on_demand + self.replica_hours_spot
    }
}

/// One second of a run, for `--csv` and `--svg`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub arrivals: u64,
    pub backlog: u64,
    pub on_demand: u32,
    pub spot: u32,
    pub ready: u32,
    /// Tasks running.
    pub running: u64,
    /// The scaler's arrival-rate estimate at its last decision.
    pub arrival_estimate: Option<f64>,
}

/// A run: the summary, and the per-second timeline when asked for.
#[derive(Debug, Clone)]
pub struct Run {
    pub summary: Summary,
    pub timeline: Vec<Sample>,
}

/// The workload replayed: arrivals per second, the mean duration of each second's arrivals
/// where the trace gives it, and how each trigger's source sees the queue.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub arrivals: &'a [u64],
    pub durations: &'a [Option<f64>],
    pub views: &'a [View],
}

/// Runs `workload` through `scaler` for `target`, with the model of `sim`; `seed` drives the
/// task durations and the spot interruptions, so a run is reproducible.
pub fn run(
    target: &Target,
    sim: &Simulation,
    workload: &Workload,
    scaler: &mut dyn Scaler,
    seed: u64,
    timeline: bool,
) -> Run {
    let mut state = State::new(target, sim, seed);
    let end = workload.arrivals.len() as u64;
    let mut samples = Vec::with_capacity(if timeline { workload.arrivals.len() } else { 0 });
    let mut t = 0u64;
    while t < end || (!state.queue.is_empty() && t < end + MAX_DRAIN_SECONDS) {
        let arriving = workload.arrivals.get(t as usize).copied().unwrap_or(0);
        let mean = workload.durations.get(t as usize).copied().flatten().unwrap_or(sim.service_seconds);
        state.second(t, arriving, mean);
        if scaler.due(t) {
            let poll = state.poll(t, workload.views);
            if let Some(wanted) = scaler.decide(t, &poll, state.fleet.provisioned()) {
                state.rescales += u64::from(state.fleet.scale_to(t, wanted, state.delay));
            }
            state.error.observe(t, scaler.arrival_estimate());
        }
        let sample = state.account(t, arriving, scaler.arrival_estimate());
        if timeline {
            samples.push(sample);
        }
        t += 1;
    }
    state.queue.count_unstarted(t);
    Run { summary: state.summary(t, workload.arrivals.iter().sum()), timeline: samples }
}

/// The simulated world of one run.
struct State<'a> {
    sim: &'a Simulation,
    fleet: Fleet,
    queue: Queue,
    rng: SplitMix64,
    delay: u64,
    interruptions_per_second: f64,
    arrived: u64,
    paid: [u64; 2],
    peak: u64,
    rescales: u64,
    interrupted: u64,
    /// Arrivals of the last seconds, for the true smoothed rate.
    error: RateError,
}

impl<'a> State<'a> {
    fn new(target: &Target, sim: &'a Simulation, seed: u64) -> State<'a> {
        let start = Split { on_demand: target.policy.min_replicas, spot: 0 };
        State {
            sim,
            fleet: Fleet::ready_with(start, sim.slots),
            queue: Queue::default(),
            rng: SplitMix64::new(seed),
            delay: sim.startup_delay.as_secs(),
            interruptions_per_second: sim.spot_interruption_rate / 3600.0,
            arrived: 0,
            paid: [0, 0],
            peak: 0,
            rescales: 0,
            interrupted: 0,
            error: RateError::default(),
        }
    }

    /// Start-ups end, spot replicas are interrupted, tasks arrive and start.
    fn second(&mut self, t: u64, arriving: u64, mean: f64) {
        self.fleet.promote(t);
        let lost = self.rng.poisson(f64::from(self.fleet.ready_spot()) * self.interruptions_per_second);
        if lost > 0 {
            let tasks = self.fleet.interrupt_spot(t, lost, self.delay);
            for (task, started) in &tasks {
                self.queue.unstart(task, *started);
            }
            self.queue.requeue(tasks.into_iter().map(|(task, _)| task).collect());
            self.interrupted += u64::from(lost);
        }
        for _ in 0..arriving {
            let duration = -mean * (1.0 - self.rng.fraction()).ln();
            self.queue.push(Task { arrived: t, duration });
        }
        self.arrived += arriving;
        self.error.arrived(arriving);
        self.fleet.serve(t, &mut self.queue);
    }

    /// What the sources see now.
    fn poll(&self, t: u64, views: &[View]) -> Poll {
        let running = self.fleet.running(t);
        let waiting = self.queue.len();
        let world =
            World { waiting, running, arrived: self.arrived, completed: self.queue.started().saturating_sub(running) };
        Poll { samples: views.iter().map(|v| v.sample(&world)).collect(), ready: self.fleet.ready() }
    }

    fn account(&mut self, t: u64, arriving: u64, estimate: Option<f64>) -> Sample {
        let paid = self.fleet.paid(t);
        self.paid[0] += u64::from(paid.on_demand);
        self.paid[1] += u64::from(paid.spot);
        self.peak = self.peak.max(self.queue.len());
        let provisioned = self.fleet.provisioned();
        Sample {
            arrivals: arriving,
            backlog: self.queue.len(),
            on_demand: provisioned.on_demand,
            spot: provisioned.spot,
            ready: self.fleet.ready(),
            running: self.fleet.running(t),
            arrival_estimate: estimate,
        }
    }

    fn summary(&self, seconds: u64, tasks: u64) -> Summary {
        let (od_hours, spot_hours) = (self.paid[0] as f64 / 3600.0, self.paid[1] as f64 / 3600.0);
        let paid_slot_seconds = (self.paid[0] + self.paid[1]) as f64 * f64::from(self.sim.slots);
        Summary {
            seconds,
            tasks,
            unfinished: self.queue.len(),
            replica_hours_on_demand: od_hours,
            replica_hours_spot: spot_hours,
            cost: od_hours * self.sim.on_demand_price + spot_hours * self.sim.spot_price,
            cost_all_on_demand: (od_hours + spot_hours) * self.sim.on_demand_price,
            wait_p50: self.queue.wait_quantile(0.5),
            wait_p95: self.queue.wait_quantile(0.95),
            wait_max: self.queue.wait_max(),
            peak_backlog: self.peak,
            rescales: self.rescales,
            spot_interruptions: self.interrupted,
            utilization: if paid_slot_seconds > 0.0 { (self.queue.work() / paid_slot_seconds).min(1.0) } else { 0.0 },
            arrival_rate_error: self.error.relative(),
        }
    }
}

/// The arrival-rate estimate against the true rate, smoothed the same way.
#[derive(Debug, Default)]
struct RateError {
    /// The true rate, smoothed per second with the estimator's time constant.
    smoothed: Option<f64>,
    absolute: f64,
    total: f64,
}

/// Estimates are compared only after this long (the estimators start from nothing).
const ERROR_WARM_UP: u64 = 600;

impl RateError {
    fn arrived(&mut self, n: u64) {
        let weight = 1.0 - (-1.0 / SMOOTHING.as_secs_f64()).exp();
        let previous = self.smoothed.unwrap_or(n as f64);
        self.smoothed = Some(previous + weight * (n as f64 - previous));
    }

    fn observe(&mut self, t: u64, estimate: Option<f64>) {
        if let (Some(estimate), Some(truth)) = (estimate, self.smoothed)
            && t >= ERROR_WARM_UP
        {
            self.absolute += (estimate - truth).abs();
            self.total += truth;
        }
    }

    fn relative(&self) -> Option<f64> {
        (self.total > 0.0).then(|| self.absolute / self.total)
    }
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
