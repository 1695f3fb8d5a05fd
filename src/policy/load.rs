//! From what sources report at each poll to the load the wait objective sizes for: the arrival
//! rate, the mean task duration, the backlog and the work in flight.
//!
//! Sources report levels (waiting, in flight) and cumulative counters (arrived, completed,
//! runtimes); a [`Tracker`] per trigger differences them between polls. Which arrival estimate it
//! can make depends on what the source sees ([`Method`]), best first:
//!
//! 1. `counted`: an arrivals counter (a Kafka topic's end offsets; an event stream's received
//!    tasks): `Δarrived / Δt`.
//! 2. `balance`: completions and in-flight work (Airflow): what arrived is what is now waiting or
//!    running more than before, plus what finished: `(Δwaiting + Δin_flight + Δcompleted) / Δt`.
//! 3. `occupancy`: in-flight work only (Celery with `include_unacked`): completions follow from
//!    Little's law, `in_flight / task_seconds`, so `(Δwaiting + Δin_flight) / Δt + in_flight / T`.
//! 4. `depth`: waiting only (Celery without it): `Δwaiting / Δt` plus what the ready slots served.
//!    While the queue stays non-empty every ready slot is busy, so that is `ready × slots / T`;
//!    while it stays empty the workers kept up and nothing says by how much, so the last estimate
//!    is kept but decays (half-life [`PROBE_HALF_LIFE`]): the fleet is probed down until a queue
//!    forms again and the rate can be read.
//!
//! Rates are smoothed with an exponentially weighted mean (time constant [`SMOOTHING`]); a
//! scale-down uses the highest smoothed rate of the last [`DOWN_WINDOW`], so one quiet poll cannot
//! lower replicas. The mean task duration starts at the objective's prior (`task_seconds`, worth
//! [`PRIOR_TASKS`] tasks) and gives way to measured durations as they come: from a runtimes
//! counter, from busy slot-seconds per completion (Little's law) where in-flight work is seen, or
//! from a Kafka group whose every consumer was busy.

use std::collections::VecDeque;
use std::time::Duration;

use super::backlog::ArrivalHistory;
use super::queueing::Ages;

/// Time constant of the smoothed arrival rate.
pub const SMOOTHING: Duration = Duration::from_secs(60);
/// A scale-down must fit the highest smoothed arrival rate of this long; also the start-up hold of
/// an objective target (no scale-down until its rates have been watched this long).
pub const DOWN_WINDOW: Duration = Duration::from_secs(120);
/// Half-life of a depth-only estimate while the queue stays empty (see the module notes).
pub const PROBE_HALF_LIFE: Duration = Duration::from_secs(300);
/// How many tasks the `task_seconds` prior is worth against measured durations.
pub const PRIOR_TASKS: f64 = 20.0;
/// Time constant over which measured durations are forgotten (task durations drift).
pub const DURATION_MEMORY: Duration = Duration::from_secs(1800);
/// Above this many tasks per second an estimate is taken for a broken counter, not a load.
pub const IMPLAUSIBLE_RATE: f64 = 1e7;

/// What a source knows, at one poll, about the load behind its value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    /// Tasks waiting for a worker.
    pub waiting: f64,
    /// Tasks being worked on; `None` where the source cannot see them (Kafka).
    pub in_flight: Option<f64>,
    /// Tasks that have arrived, cumulative (Kafka: end offsets; events: tasks received).
    pub arrived: Option<u64>,
    /// Tasks that have finished, cumulative (Kafka: committed offsets; Airflow: left `running`).
    pub completed: Option<u64>,
    /// Durations of finished tasks, cumulative, where the source reads them.
    pub runtimes: Option<Runtimes>,
}

/// A cumulative count of finished tasks and the seconds they ran.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Runtimes {
    pub tasks: u64,
    pub seconds: f64,
}

/// How the arrival rate was estimated, from the best the source offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Counted,
    Balance,
    Occupancy,
    Depth,
}

impl Method {
    /// A stable name for reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Counted => "counted",
            Method::Balance => "balance",
            Method::Occupancy => "occupancy",
            Method::Depth => "depth",
        }
    }

    fn of(load: &Load) -> Method {
        match (load.arrived, load.completed, load.in_flight) {
            (Some(_), _, _) => Method::Counted,
            (None, Some(_), Some(_)) => Method::Balance,
            (None, _, Some(_)) => Method::Occupancy,
            _ => Method::Depth,
        }
    }
}

/// What the tracker needs to know about the workers at this poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fleet {
    /// Replicas taking tasks.
    pub ready: u32,
    pub slots: u32,
    /// The objective's prior for the mean task duration, if any.
    pub prior_task_seconds: Option<f64>,
}

/// The load of one trigger, as the objective sizes for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Smoothed arrivals per second (for a scale-up).
    pub arrival_rate: f64,
    /// The highest smoothed rate of the down window (what a scale-down must still serve).
    pub arrival_rate_high: f64,
    /// Smoothed completions per second, where the source counts them.
    pub completion_rate: Option<f64>,
    /// Mean seconds a task occupies a slot; `None` with neither a prior nor a measurement.
    pub task_seconds: Option<f64>,
    pub backlog: f64,
    pub in_flight: Option<f64>,
    pub method: Method,
    /// Whether a scale-down may rest on this estimate: watched long enough, nothing implausible.
    pub settled: bool,
    /// No sign of any task over the down window: the target may go to zero.
    pub idle: bool,
    /// How long the waiting tasks have waited already (FIFO, from the arrivals seen at each poll).
    pub ages: Ages,
}

/// What one interval taught the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A counter went backwards, or a rate beyond belief: nothing learned, differences restart.
    Implausible,
    /// Rates learned; `arrivals`: the counters moved (tasks came or went between the polls).
    Learned { arrivals: bool },
}

/// A depth-only estimate for one interval.
enum DepthSample {
    /// Read from the queue and the busy slots: averaged into the smoothed rate.
    Rate(f64),
    /// The queue stayed empty: the smoothed rate itself, decayed.
    Decayed(f64),
}

/// What a trigger's load looked like at one poll.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Duration,
    load: Load,
}

/// The estimator of one trigger: the previous poll and the smoothed values.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    last: Option<Seen>,
    /// When this tracker (re)started watching: no scale-down within [`DOWN_WINDOW`] of it.
    since: Option<Duration>,
    arrival: Option<f64>,
    completion: Option<f64>,
    /// Smoothed arrival rates of the down window, for its maximum.
    recent: VecDeque<(Duration, f64)>,
    /// Measured work: decayed sums of tasks and of the seconds they ran.
    measured_tasks: f64,
    measured_seconds: f64,
    /// The last time a poll showed any task (arriving, waiting, running or finishing).
    last_activity: Option<Duration>,
    /// Cumulative arrivals at each poll, for the ages of the waiting tasks.
    arrivals: ArrivalHistory,
    /// Tasks estimated to have arrived in the last interval (sources that do not count them).
    interval_arrivals: Option<f64>,
    /// The last interval's own rate, when the queue grew over it (see [`Tracker::observe`]).
    rising: Option<f64>,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Takes this poll's load into account and returns the estimate to size for.
    pub fn observe(&mut self, load: Load, fleet: Fleet, now: Duration) -> Estimate {
        let method = Method::of(&load);
        let since = *self.since.get_or_insert(now);
        let outcome = match self.last.filter(|l| now > l.at) {
            _ if !valid(&load) => Outcome::Implausible,
            Some(last) => self.learn(&last, &load, fleet, now),
            None => {
                if self.last.is_none() {
                    self.first_sight(&load, fleet);
                }
                Outcome::Learned { arrivals: false }
            }
        };
        let plausible = outcome != Outcome::Implausible;
        // A depth-only source cannot tell an empty queue from one the workers keep up with: only
        // an estimate that has decayed to under one task per window counts as no activity.
        let guessed = method == Method::Depth && self.arrival.unwrap_or(0.0) * DOWN_WINDOW.as_secs_f64() >= 1.0;
        if active(&load) || guessed || outcome == (Outcome::Learned { arrivals: true }) {
            self.last_activity = Some(now);
        }
        if plausible {
            self.last = Some(Seen { at: now, load });
            self.record_arrivals(&load, now);
        } else {
            // A broken counter: start the differences again from the next poll.
            self.last = None;
            self.since = Some(now);
            self.arrivals.clear();
        }
        // A queue that grew over the interval is believed at once: the smoothed rate would lag a
        // real rise by its time constant while the backlog builds (it still smooths the way down).
        let arrival_rate = self.arrival.unwrap_or(0.0).max(self.rising.take().unwrap_or(0.0));
        self.remember(now, arrival_rate);
        Estimate {
            arrival_rate,
            arrival_rate_high: self.recent.iter().map(|(_, r)| *r).fold(arrival_rate, f64::max),
            completion_rate: self.completion,
            task_seconds: self.task_seconds(fleet.prior_task_seconds),
            backlog: load.waiting.max(0.0),
            in_flight: load.in_flight.map(|f| f.max(0.0)),
            method,
            settled: plausible && self.arrival.is_some() && now >= since + DOWN_WINDOW,
            idle: self.last_activity.is_none_or(|at| now >= at + DOWN_WINDOW) && now >= since + DOWN_WINDOW,
            ages: if plausible { self.arrivals.ages(now, load.waiting) } else { Ages::default() },
        }
    }

    /// The tasks arrived so far: counted (Kafka), what finished, runs and waits (Airflow), or
    /// the estimate integrated over the intervals.
    fn record_arrivals(&mut self, load: &Load, now: Duration) {
        let in_flight = load.in_flight.unwrap_or(0.0);
        let arrived = match (load.arrived, load.completed, load.in_flight) {
            (Some(arrived), _, _) => arrived as f64,
            (None, Some(completed), Some(_)) => completed as f64 + in_flight + load.waiting,
            _ => match (self.arrivals.last(), self.interval_arrivals.take()) {
                (Some(last), Some(interval)) => last + interval.max(0.0),
                (Some(last), None) => last,
                // First sight: as if what waits and runs had just arrived.
                (None, _) => load.waiting + in_flight,
            },
        };
        self.arrivals.record(now, arrived);
    }

    /// The mean task duration: the prior worth [`PRIOR_TASKS`] tasks, plus what was measured.
    fn task_seconds(&self, prior: Option<f64>) -> Option<f64> {
        let (prior_tasks, prior_seconds) = prior.map_or((0.0, 0.0), |p| (PRIOR_TASKS, PRIOR_TASKS * p));
        let tasks = prior_tasks + self.measured_tasks;
        (tasks >= 1.0).then(|| (prior_seconds + self.measured_seconds) / tasks)
    }

    /// Little's law on the first poll: with work in flight and a known duration, the arrivals that
    /// keep it so are `in_flight / T` (a steady-state guess, good enough to size a first scale-up).
    fn first_sight(&mut self, load: &Load, fleet: Fleet) {
        if let (Some(in_flight), Some(seconds)) = (load.in_flight, self.task_seconds(fleet.prior_task_seconds)) {
            self.arrival = Some(in_flight.max(0.0) / seconds);
        }
    }

    /// One interval's rates and durations.
    fn learn(&mut self, last: &Seen, load: &Load, fleet: Fleet, now: Duration) -> Outcome {
        let dt = (now - last.at).as_secs_f64();
        let (before, after) = (&last.load, load);
        let (Some(arrived), Some(completed)) =
            (delta(before.arrived, after.arrived), delta(before.completed, after.completed))
        else {
            return Outcome::Implausible;
        };
        self.learn_durations(before, after, completed, fleet, dt);
        let sample = match Method::of(after) {
            Method::Counted => arrived.map(|n| n / dt),
            Method::Balance => completed.map(|done| {
                let in_flight = after.in_flight.unwrap_or(0.0) - before.in_flight.unwrap_or(0.0);
                (after.waiting - before.waiting + in_flight + done) / dt
            }),
            Method::Occupancy => self.task_seconds(fleet.prior_task_seconds).map(|seconds| {
                let (b, a) = (before.in_flight.unwrap_or(0.0), after.in_flight.unwrap_or(0.0));
                (after.waiting - before.waiting + a - b) / dt + (a + b) / 2.0 / seconds
            }),
            Method::Depth => match self.depth_sample(before, after, fleet, dt) {
                Some(DepthSample::Decayed(rate)) => {
                    // Already a smoothed value: decayed, not averaged in again.
                    self.arrival = Some(rate);
                    None
                }
                Some(DepthSample::Rate(rate)) => Some(rate),
                None => None,
            },
        };
        if let Some(done) = completed {
            self.completion = Some(smooth(self.completion, (done / dt).max(0.0), dt));
        }
        // Tasks counted in or out: the target is not idle, whatever the levels at the polls.
        let counted = arrived.or(completed).is_some_and(|n| n > 0.0);
        match sample {
            Some(rate) if rate.is_finite() && rate <= IMPLAUSIBLE_RATE => {
                self.interval_arrivals = Some(rate.max(0.0) * dt);
                self.rising = (after.waiting > before.waiting).then_some(rate);
                self.arrival = Some(smooth(self.arrival, rate.max(0.0), dt));
                Outcome::Learned { arrivals: counted }
            }
            Some(_) => Outcome::Implausible,
            None => Outcome::Learned { arrivals: counted },
        }
    }

    /// Depth only: the change in the queue plus what the ready slots served (see the module notes).
    fn depth_sample(&self, before: &Load, after: &Load, fleet: Fleet, dt: f64) -> Option<DepthSample> {
        let seconds = self.task_seconds(fleet.prior_task_seconds)?;
        let capacity = f64::from(fleet.ready) * f64::from(fleet.slots) / seconds;
        let busy_share = match (before.waiting > 0.0, after.waiting > 0.0) {
            (true, true) => 1.0,
            (false, false) => {
                let decay = 0.5f64.powf(dt / PROBE_HALF_LIFE.as_secs_f64());
                return Some(DepthSample::Decayed(self.arrival.unwrap_or(0.0).min(capacity) * decay));
            }
            _ => 0.5,
        };
        Some(DepthSample::Rate((after.waiting - before.waiting) / dt + busy_share * capacity))
    }

    /// Measured durations: a runtimes counter; else busy slot-seconds per completion.
    fn learn_durations(&mut self, before: &Load, after: &Load, completed: Option<f64>, fleet: Fleet, dt: f64) {
        let keep = (-dt / DURATION_MEMORY.as_secs_f64()).exp();
        self.measured_tasks *= keep;
        self.measured_seconds *= keep;
        if let (Some(b), Some(a)) = (before.runtimes, after.runtimes) {
            if a.tasks > b.tasks && a.seconds >= b.seconds {
                self.measured_tasks += (a.tasks - b.tasks) as f64;
                self.measured_seconds += a.seconds - b.seconds;
            }
            return;
        }
        let Some(done) = completed else { return };
        let busy = match (before.in_flight, after.in_flight) {
            (Some(b), Some(a)) => (a + b) / 2.0,
            // Every consumer busy at both ends (a Kafka group lagging by more than it can hold).
            _ if fleet.ready > 0 && before.waiting.min(after.waiting) > f64::from(fleet.ready * fleet.slots) => {
                f64::from(fleet.ready * fleet.slots)
            }
            _ => return,
        };
        if done > 0.0 || busy > 0.0 {
            self.measured_tasks += done;
            self.measured_seconds += busy * dt;
        }
    }

    fn remember(&mut self, now: Duration, rate: f64) {
        while self.recent.front().is_some_and(|(at, _)| *at + DOWN_WINDOW <= now) {
            self.recent.pop_front();
        }
        while self.recent.back().is_some_and(|(_, r)| *r <= rate) {
            self.recent.pop_back();
        }
        self.recent.push_back((now, rate));
    }
}

/// The change of a cumulative counter: `Some(None)` where the source has no such counter,
/// `None` when it went backwards (a reset or a broken source).
fn delta(before: Option<u64>, after: Option<u64>) -> Option<Option<f64>> {
    match (before, after) {
        (Some(b), Some(a)) if a < b => None,
        (Some(b), Some(a)) => Some(Some((a - b) as f64)),
        _ => Some(None),
    }
}

/// An exponentially weighted mean over irregular intervals.
fn smooth(previous: Option<f64>, sample: f64, dt: f64) -> f64 {
    match previous {
        None => sample,
        Some(previous) => {
            let weight = 1.0 - (-dt / SMOOTHING.as_secs_f64()).exp();
            previous + weight * (sample - previous)
        }
    }
}

fn valid(load: &Load) -> bool {
    let fine = |v: f64| v.is_finite() && v >= 0.0;
    fine(load.waiting) && load.in_flight.is_none_or(fine) && load.runtimes.is_none_or(|r| fine(r.seconds))
}

/// Any sign of a task at this poll (the counters' changes are seen through the smoothed rate).
fn active(load: &Load) -> bool {
    load.waiting > 0.0 || load.in_flight.is_some_and(|f| f > 0.0)
}

#[cfg(test)]
mod tests;
