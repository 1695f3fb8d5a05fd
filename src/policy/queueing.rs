//! The queueing model behind the wait objective: how long tasks will wait for a worker slot with
//! N replicas, given the arrival rate, the mean task duration, the backlog and the start-up delay.
//!
//! Two parts, and the prediction is the larger of the two:
//!
//! - **Steady state: M/M/c (Erlang C).** With `c = N × slots` servers, arrival rate λ and service
//!   rate μ per server (`a = λ/μ` erlangs, stable only while `a < c`), the probability that a task
//!   waits at all is Erlang's C formula, and the wait is exponential beyond it:
//!   `P(W > t) = C(c, a) · e^(−(cμ − λ)t)`, so the p-quantile is `ln(C / (1 − p)) / (cμ − λ)`
//!   (Kleinrock, *Queueing Systems* vol. 1 §3.5; Erlang B by its recurrence
//!   `B(k) = a·B(k−1) / (k + a·B(k−1))`, which stays finite for any c).
//! - **The backlog, drained on top (a fluid model).** The tasks already waiting are served at the
//!   ready capacity until new replicas are ready (after the start-up delay), then at the full
//!   capacity, while arrivals keep coming: the longest wait of a task enqueued from now on
//!   ([`drain_wait`]), and, for the tasks already waiting, the time they have waited plus the
//!   time until their turn ([`Ages`]): a burst half drained is not given a fresh `max_wait`.
//!
//! Everything here is a pure function of numbers: no history, no time.

use std::time::Duration;

/// What the queue asks of the workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    /// Tasks arriving per second.
    pub arrival_rate: f64,
    /// Mean seconds one task occupies a slot.
    pub task_seconds: f64,
    /// Tasks waiting now.
    pub backlog: f64,
    /// How long tasks in the backlog have waited already (none known: as if just enqueued).
    pub ages: Ages,
}

/// Checkpoints through the backlog: the task with `ahead` tasks before it in the queue has waited
/// `seconds` already. FIFO, so `ahead` grows as `seconds` shrinks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ages {
    points: [(f64, f64); Ages::CAPACITY],
    len: usize,
}

impl Ages {
    /// At most this many checkpoints are kept (the newest, evenly thinned).
    pub const CAPACITY: usize = 8;

    /// Checkpoints `(ahead, seconds)`; beyond [`Ages::CAPACITY`], evenly chosen ones.
    pub fn new(points: &[(f64, f64)]) -> Ages {
        let mut ages = Ages::default();
        let step = points.len().div_ceil(Ages::CAPACITY).max(1);
        for point in points.iter().rev().step_by(step).take(Ages::CAPACITY) {
            ages.points[ages.len] = *point;
            ages.len += 1;
        }
        ages
    }

    pub fn points(&self) -> &[(f64, f64)] {
        &self.points[..self.len]
    }

    /// How long the oldest checkpoint has waited.
    pub fn oldest(&self) -> f64 {
        self.points().iter().map(|(_, seconds)| *seconds).fold(0.0, f64::max)
    }
}

/// What the workers can give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workers {
    /// Tasks one replica runs at once.
    pub slots: u32,
    /// Replicas taking tasks now.
    pub ready: u32,
    /// From a scale-up until a new replica takes tasks.
    pub startup: Duration,
}

/// The wait quantile objectives are stated in: p95.
pub const QUANTILE: f64 = 0.95;

/// Predicted p95 wait (seconds) with `replicas`; infinite when they cannot keep up.
pub fn predicted_wait(demand: &Demand, workers: &Workers, replicas: u32) -> f64 {
    let servers = f64::from(replicas) * f64::from(workers.slots);
    let steady = erlang_c_wait_quantile(servers, demand.arrival_rate, demand.task_seconds, QUANTILE);
    let waiting = demand.ages.points().iter().map(|(ahead, waited)| {
        let queued = Demand { arrival_rate: 0.0, backlog: ahead.min(demand.backlog), ..*demand };
        waited + drain_wait(&queued, workers, replicas)
    });
    waiting.fold(steady.max(drain_wait(demand, workers, replicas)), f64::max)
}

/// The fewest replicas in `[low, high]` whose predicted wait is at most `max_wait` seconds, with
/// that prediction. When even `high` cannot meet it, the fewest whose prediction is as good as
/// `high`'s (within a second or 1 %): replicas that would come too late to help — a backlog the
/// ready ones drain before new ones start, tasks that are late already — are not asked for.
/// The wait never grows with replicas, so a binary search finds the boundary.
pub fn fewest_replicas(demand: &Demand, workers: &Workers, max_wait: f64, low: u32, high: u32) -> (u32, f64) {
    let high = high.max(low);
    let at_high = predicted_wait(demand, workers, high);
    if at_high.is_infinite() {
        // Not even `high` keeps up: as many as allowed.
        return (high, at_high);
    }
    let good_enough = if at_high > max_wait { at_high + (at_high * 0.01).max(1.0) } else { max_wait };
    let (mut lo, mut hi) = (low, high);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if predicted_wait(demand, workers, mid) <= good_enough {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    (lo, predicted_wait(demand, workers, lo))
}

/// The `quantile` of the wait in an M/M/c queue with `servers` servers (seconds): 0 when that
/// share of tasks starts at once, infinite when the servers cannot keep up.
pub fn erlang_c_wait_quantile(servers: f64, arrival_rate: f64, task_seconds: f64, quantile: f64) -> f64 {
    if arrival_rate <= 0.0 {
        return 0.0;
    }
    let service_rate = 1.0 / task_seconds;
    let spare = servers * service_rate - arrival_rate;
    if spare <= 0.0 || !spare.is_finite() {
        return f64::INFINITY;
    }
    let waits = erlang_c(servers, arrival_rate * task_seconds);
    let tail = 1.0 - quantile;
    if waits <= tail { 0.0 } else { (waits / tail).ln() / spare }
}

/// Erlang's C formula: the probability that a task has to wait, with `servers` servers and
/// `offered` erlangs of load (`offered < servers`). From Erlang B by its recurrence:
/// `C = c·B / (c − a·(1 − B))`.
pub fn erlang_c(servers: f64, offered: f64) -> f64 {
    if offered <= 0.0 {
        return 0.0;
    }
    if offered >= servers {
        return 1.0;
    }
    let mut blocking = 1.0;
    let mut k = 1.0;
    while k <= servers {
        blocking = offered * blocking / (k + offered * blocking);
        k += 1.0;
    }
    let waits = servers * blocking / (servers - offered * (1.0 - blocking));
    waits.clamp(0.0, 1.0)
}

/// The longest wait (seconds) of a task enqueued from now on, as the backlog drains: served at the
/// ready replicas' capacity `c0` until the start-up delay `d` has passed, then at the capacity of
/// `replicas`, `c1`, with arrivals at λ all along (a fluid approximation: rates, not tasks).
///
/// With fewer replicas than are ready, the capacity drops at once. Otherwise, if the backlog
/// outlasts the start-up (`B ≥ c0·d`), the task enqueued now waits longest:
/// `d + (B − c0·d) / c1`. If not, it is served by the ready replicas after `B / c0`, unless
/// arrivals outpace them (`λ > c0`) and the queue grows until the new replicas come: then the
/// task arriving just in time for them waits longest, `d − (c0·d − B) / λ`.
pub fn drain_wait(demand: &Demand, workers: &Workers, replicas: u32) -> f64 {
    let per_replica = f64::from(workers.slots) / demand.task_seconds;
    let (lambda, backlog) = (demand.arrival_rate.max(0.0), demand.backlog.max(0.0));
    let full = f64::from(replicas) * per_replica;
    if lambda >= full && (lambda > 0.0 || backlog > 0.0) {
        return f64::INFINITY;
    }
    if replicas <= workers.ready {
        return if backlog > 0.0 { backlog / full } else { 0.0 };
    }
    let now = f64::from(workers.ready) * per_replica;
    let d = workers.startup.as_secs_f64();
    if backlog >= now * d {
        return d + (backlog - now * d) / full;
    }
    let drained = if backlog > 0.0 { backlog / now } else { 0.0 };
    let growing = if lambda > now { d - (now * d - backlog) / lambda } else { 0.0 };
    drained.max(growing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-9)
    }

    #[test]
    fn erlang_c_matches_published_values() {
        // Textbook values (e.g. Kleinrock; any Erlang C table): c = 2, a = 1 → 1/3;
        // c = 10, a = 8 → 0.4092; c = 1 (M/M/1): C = ρ.
        assert!(close(erlang_c(2.0, 1.0), 1.0 / 3.0, 1e-9));
        assert!(close(erlang_c(10.0, 8.0), 0.409_2, 1e-3));
        assert!(close(erlang_c(1.0, 0.7), 0.7, 1e-9));
        assert_eq!(erlang_c(5.0, 0.0), 0.0);
        assert_eq!(erlang_c(5.0, 5.0), 1.0, "saturated: every task waits");
        let big = erlang_c(2_000.0, 1_950.0);
        assert!(big.is_finite() && big > 0.0 && big < 1.0, "large fleets stay finite: {big}");
    }

    #[test]
    fn the_m_m_1_wait_quantile_has_a_closed_form() {
        // M/M/1: P(W > t) = ρ e^{-(μ-λ)t}. λ = 0.5/s, 1 s tasks: ρ = 0.5, p95 = ln(0.5/0.05)/0.5.
        let p95 = erlang_c_wait_quantile(1.0, 0.5, 1.0, 0.95);
        assert!(close(p95, (10.0f64).ln() / 0.5, 1e-9), "{p95}");
        assert_eq!(erlang_c_wait_quantile(1.0, 0.01, 1.0, 0.95), 0.0, "ρ = 1 % < 5 %: p95 is no wait");
        assert_eq!(erlang_c_wait_quantile(1.0, 1.0, 1.0, 0.95), f64::INFINITY, "ρ = 1 never keeps up");
        assert_eq!(erlang_c_wait_quantile(3.0, 0.0, 30.0, 0.95), 0.0);
    }

    fn workers(ready: u32, startup: u64) -> Workers {
        Workers { slots: 4, ready, startup: Duration::from_secs(startup) }
    }

    #[test]
    fn a_backlog_drains_at_the_ready_capacity() {
        // 4 slots × 10 s tasks: 0.4 tasks/s per replica. 2 ready, 40 waiting, nothing arriving:
        // the last of them starts after 40 / 0.8 = 50 s.
        let demand = Demand { arrival_rate: 0.0, task_seconds: 10.0, backlog: 40.0, ages: Ages::default() };
        assert!(close(drain_wait(&demand, &workers(2, 60), 2), 50.0, 1e-9));
        assert!(close(drain_wait(&demand, &workers(2, 60), 1), 100.0, 1e-9), "a scale-down halves it now");
    }

    #[test]
    fn new_replicas_help_only_after_the_start_up_delay() {
        let demand = Demand { arrival_rate: 0.0, task_seconds: 10.0, backlog: 100.0, ages: Ages::default() };
        // 2 ready serve 0.8/s: 48 in the 60 s start-up, the other 52 at 10 × 0.4 = 4/s: 13 s more.
        assert!(close(drain_wait(&demand, &workers(2, 60), 10), 73.0, 1e-9));
        // From zero replicas, the first task waits the whole start-up.
        let cold = Demand { arrival_rate: 0.1, task_seconds: 10.0, backlog: 0.0, ages: Ages::default() };
        assert!(close(drain_wait(&cold, &workers(0, 60), 1), 60.0, 1e-9));
        // Arrivals above the ready capacity: the queue grows until the new replicas come.
        let rising = Demand { arrival_rate: 1.6, task_seconds: 10.0, backlog: 0.0, ages: Ages::default() };
        // c0 = 0.8/s: the task arriving at t* = 0.8·60/1.6 = 30 s is served at 60 s.
        assert!(close(drain_wait(&rising, &workers(2, 60), 5), 30.0, 1e-9));
        assert_eq!(drain_wait(&rising, &workers(2, 60), 4), f64::INFINITY, "4 × 0.4 = 1.6: never catches up");
    }

    #[test]
    fn a_backlog_that_has_waited_needs_more_replicas_for_the_same_objective() {
        // 1,500 tasks left of a burst, 10 s tasks, 4-slot replicas (0.4/s each), 10 ready, no
        // start-up: fresh, 60 s needs 1,500 / 60 / 0.4 = 63 replicas; the same tasks after 30 s
        // of waiting have 30 s left: 125.
        let workers = Workers { slots: 4, ready: 200, startup: Duration::ZERO };
        let fresh = Demand { arrival_rate: 0.0, task_seconds: 10.0, backlog: 1500.0, ages: Ages::default() };
        assert_eq!(fewest_replicas(&fresh, &workers, 60.0, 1, 200).0, 63);
        let ages = Ages::new(&[(0.0, 30.0), (1500.0, 30.0)]);
        let waited = Demand { ages, ..fresh };
        assert_eq!(fewest_replicas(&waited, &workers, 60.0, 1, 200).0, 125);
        assert_eq!(ages.oldest(), 30.0);
    }

    #[test]
    fn ages_keep_at_most_eight_checkpoints_including_the_newest() {
        let points: Vec<(f64, f64)> = (0..20).map(|i| (f64::from(i), f64::from(20 - i))).collect();
        let ages = Ages::new(&points);
        assert_eq!(ages.points().len(), 7, "every third of 20");
        assert_eq!(ages.points()[0], (19.0, 1.0), "the newest is always kept");
    }

    #[test]
    fn the_fewest_replicas_meet_the_objective() {
        // 5.2 tasks/s of 30 s tasks is 156 erlangs: 16-slot replicas need 160 slots (10) to be
        // stable; 10 keep the p95 wait within a minute.
        let demand = Demand { arrival_rate: 5.2, task_seconds: 30.0, backlog: 0.0, ages: Ages::default() };
        let workers = Workers { slots: 16, ready: 10, startup: Duration::from_secs(90) };
        let (replicas, wait) = fewest_replicas(&demand, &workers, 60.0, 0, 50);
        assert_eq!(replicas, 10);
        assert!(wait <= 60.0 && predicted_wait(&demand, &workers, 9) > 60.0, "{wait}");
        // Unreachable within the bounds: the upper bound, with its (too long) prediction.
        let (replicas, wait) = fewest_replicas(&demand, &workers, 60.0, 0, 8);
        assert_eq!((replicas, wait), (8, f64::INFINITY));
    }

    #[test]
    fn replicas_that_would_come_too_late_are_not_asked_for() {
        // 100 tasks that have waited 10 min already, 10 s tasks, 2 ready replicas of 4 slots: they
        // drain in 125 s; new replicas would be ready only after 300 s. The objective (60 s)
        // cannot be met, and more replicas would not help: the 2 ready ones are as good as 50.
        let ages = Ages::new(&[(0.0, 600.0), (100.0, 600.0)]);
        let late = Demand { arrival_rate: 0.0, task_seconds: 10.0, backlog: 100.0, ages };
        let workers = Workers { slots: 4, ready: 2, startup: Duration::from_secs(300) };
        let (replicas, wait) = fewest_replicas(&late, &workers, 60.0, 1, 50);
        assert_eq!(replicas, 2, "{wait}");
        assert!((wait - 725.0).abs() < 1e-9);
    }

    #[test]
    fn the_prediction_never_grows_with_replicas() {
        let cases = [(0.0, 30.0, 500.0, 0), (3.0, 30.0, 0.0, 5), (3.0, 30.0, 200.0, 5), (40.0, 2.0, 10.0, 1)];
        for (arrival_rate, task_seconds, backlog, ready) in cases {
            let ages = Ages::new(&[(backlog, 0.0), (backlog / 2.0, 20.0), (0.0, 50.0)]);
            let demand = Demand { arrival_rate, task_seconds, backlog, ages };
            let waits: Vec<f64> = (0..40).map(|n| predicted_wait(&demand, &workers(ready, 45), n)).collect();
            assert!(waits.windows(2).all(|w| w[1] <= w[0]), "{demand:?} ready {ready}: {waits:?}");
        }
    }
}
