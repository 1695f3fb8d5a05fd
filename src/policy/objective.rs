//! The wait objective: the fewest replicas whose predicted p95 wait stays within `max_wait`, for
//! each trigger's estimated load ([`super::load`]) through the queueing model
//! ([`super::queueing`]), with a hysteresis that stops flapping.
//!
//! **Hysteresis.** With arrival rate λ and `h` the hysteresis, a trigger asks for
//!
//! - `up`, the fewest replicas meeting the objective at λ (the current smoothed rate);
//! - `down`, the fewest keeping the wait within `(1 − h) · max_wait` at λ_high, the highest
//!   smoothed rate of the last [`super::load::DOWN_WINDOW`] (so `down ≥ up`: the prediction never
//!   falls as the rate rises or the bound tightens);
//! - `margin`, the same at `(1 + h) · λ_high` (`margin ≥ down`);
//!
//! and for `up` if that is more than the current replicas; for `down` if `margin` is fewer than
//! the current replicas (the margin decides whether to go down, `down` how far); else for the
//! current replicas. Why this cannot flap: while the estimates stand still (λ = λ_high), a
//! scale-up to `up` is followed by nothing (`up` = current ≤ `margin`), and a scale-down to `down`
//! is followed by nothing either (`up ≤ down` = current, `margin ≥` current). Going down and then
//! up again takes the rate to rise above the highest of the window before the scale-down, or the
//! predicted wait to grow by `h · max_wait` — and the scale-down itself took the rate to fall `h`
//! below what the replicas before it served: a real change of load, not the noise of a poll.

use std::fmt;
use std::time::Duration;

use super::load::{Estimate, Method};
use super::queueing::{self, Demand, Workers};

/// `[targets.objective]`: what the target wants instead of a per-replica ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// The p95 time from enqueue until a worker starts the task.
    pub max_wait: Duration,
    /// Tasks one replica runs at once.
    pub slots: u32,
    /// Prior for the mean task duration, until the sources have measured it.
    pub task_seconds: Option<f64>,
    /// Prior for the start-up delay, until it has been learned from ready replicas.
    pub startup: Duration,
    /// How much higher than the recent peak rate a smaller fleet must still serve (0.2 = 20 %).
    pub hysteresis: f64,
}

impl Objective {
    /// The defaults where the config is silent: a 30 s start-up, a 20 % hysteresis.
    pub const DEFAULT_STARTUP: Duration = Duration::from_secs(30);
    pub const DEFAULT_HYSTERESIS: f64 = 0.2;
}

/// What the objective concluded for one trigger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub estimate: Estimate,
    pub max_wait: Duration,
    pub slots: u32,
    /// The start-up delay used (learned, or the prior).
    pub startup: Duration,
    /// Replicas ready when the prediction was made.
    pub ready: u32,
    /// What the trigger asks for, and why.
    pub step: Step,
    /// The replicas asked for.
    pub replicas: u32,
    /// Predicted p95 wait (seconds) with them; infinite if they cannot keep up.
    pub predicted_wait: f64,
}

/// Why a trigger asks for the replicas it does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The fewest replicas that meet the objective at the current rate.
    Meet,
    /// Even the most replicas allowed cannot meet it: as many as allowed.
    Unreachable,
    /// Fewer would meet it now, but not at `(1 + h)` × the recent peak: the current replicas stay.
    Hysteresis { fewest: u32, peak: f64 },
    /// Fewer would do, but the rates have not been watched long enough (or a counter misbehaved).
    Unsettled { fewest: u32 },
    /// Fewer would do, but tasks are waiting: the workers are all busy and would finish their
    /// tasks, paid, before they went.
    Draining { fewest: u32 },
    /// No task duration known yet (no prior, nothing measured): one slot per task waiting or
    /// running, never fewer than now.
    NoDuration,
}

/// Sizes one trigger: see the module notes. `ready` replicas take tasks now; `max` bounds the search.
pub fn size(
    objective: &Objective,
    estimate: Estimate,
    current: u32,
    ready: u32,
    startup: Duration,
    max: u32,
) -> Prediction {
    let workers = Workers { slots: objective.slots, ready, startup };
    let prediction = |step, replicas, predicted_wait| Prediction {
        estimate,
        max_wait: objective.max_wait,
        slots: objective.slots,
        startup,
        ready,
        step,
        replicas,
        predicted_wait,
    };
    let Some(task_seconds) = estimate.task_seconds else {
        let tasks = estimate.backlog + estimate.in_flight.unwrap_or(0.0);
        let wanted = (tasks / f64::from(objective.slots)).ceil().min(f64::from(max)) as u32;
        return prediction(Step::NoDuration, wanted.max(current), f64::INFINITY);
    };
    let floor = u32::from(!estimate.idle);
    let rate = if estimate.idle { 0.0 } else { estimate.arrival_rate };
    let max_wait = objective.max_wait.as_secs_f64();
    let demand = Demand { arrival_rate: rate, task_seconds, backlog: estimate.backlog, ages: estimate.ages };
    let (up, wait) = queueing::fewest_replicas(&demand, &workers, max_wait, floor, max);
    let met = |wait: f64| if wait <= max_wait { Step::Meet } else { Step::Unreachable };
    if up >= current {
        return prediction(met(wait), up, wait);
    }
    // Fewer would do. Down only on settled rates, and only if fewer would still serve the recent
    // peak with the margin (see the module notes) — whether or not the objective is reachable.
    let high = if estimate.idle { 0.0 } else { estimate.arrival_rate_high };
    // Below the current replicas the wait must also keep a margin: a backlog drained right at
    // its deadline would otherwise flip the count up and down with every poll's noise.
    let within = max_wait * (1.0 - objective.hysteresis);
    let fewest_at =
        |rate| queueing::fewest_replicas(&Demand { arrival_rate: rate, ..demand }, &workers, within, floor, max).0;
    let margin = high * (1.0 + objective.hysteresis);
    let hold = |step| prediction(step, current, queueing::predicted_wait(&demand, &workers, current));
    if !estimate.settled {
        return hold(Step::Unsettled { fewest: up });
    }
    // Tasks waiting mean every slot is busy: a worker removed now takes no new task but runs
    // its current ones to the end, paid, so the scale-down saves little and slows the drain.
    // (Not for a Kafka lag, which counts the messages in flight and rarely reaches 0.)
    let queued = estimate.in_flight.is_some() || estimate.method == Method::Depth;
    if queued && estimate.backlog >= 1.0 {
        return hold(Step::Draining { fewest: up });
    }
    if fewest_at(margin) >= current {
        return hold(Step::Hysteresis { fewest: up, peak: margin });
    }
    // Down to what the recent peak needs within the margin (the rate's margin only decides
    // whether to move at all).
    let down = fewest_at(high).max(up);
    let wait = queueing::predicted_wait(&demand, &workers, down);
    prediction(met(wait), down, wait)
}

impl Prediction {
    /// Busy slots over the ready slots: the in-flight work where the source sees it, else the
    /// offered load `λ × T` (capped at 1); `None` with nothing ready or no duration known.
    pub fn utilization(&self) -> Option<f64> {
        let slots = f64::from(self.ready) * f64::from(self.slots);
        if slots <= 0.0 {
            return None;
        }
        let busy = match self.estimate.in_flight {
            Some(in_flight) => in_flight,
            None => self.estimate.arrival_rate * self.estimate.task_seconds?,
        };
        Some((busy / slots).clamp(0.0, 1.0))
    }

    /// Completions per second: counted where the source counts them, else what the in-flight work
    /// finishes at (`in_flight / T`).
    pub fn completion_rate(&self) -> Option<f64> {
        let e = &self.estimate;
        e.completion_rate.or_else(|| Some(e.in_flight? / e.task_seconds?))
    }
}

impl fmt::Display for Prediction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.estimate;
        // Counted (Kafka's offsets, Celery's task events) or estimated from levels: the reason says which.
        let how = if e.method == Method::Counted { " (counted)" } else { " (est.)" };
        write!(f, "arrivals {}/s{how}", rate(if e.idle { 0.0 } else { e.arrival_rate }))?;
        if let Some(seconds) = e.task_seconds {
            write!(f, ", {} tasks/s per slot", rate(1.0 / seconds))?;
        }
        write!(f, ", backlog {}", count(e.backlog))?;
        if e.ages.oldest() >= 1.0 && e.backlog > 0.0 {
            write!(f, " (oldest {})", seconds(e.ages.oldest()))?;
        }
        match e.in_flight {
            Some(n) => write!(f, ", in flight {}", count(n))?,
            None => write!(f, ", in flight unseen")?,
        }
        let (n, max_wait, predicted) = (self.replicas, self.max_wait.as_secs(), seconds(self.predicted_wait));
        match self.step {
            Step::Meet => write!(f, " → {n} replicas keep p95 wait ≤ {max_wait}s (predicted {predicted})"),
            Step::Unreachable => {
                write!(f, " → {n} replicas, the most allowed, predict p95 wait {predicted} > {max_wait}s")
            }
            Step::Hysteresis { fewest, peak } => write!(
                f,
                " → {fewest} would keep p95 wait ≤ {max_wait}s, but not at {}/s (the recent peak + hysteresis): {n} kept (predicted {predicted})",
                rate(peak)
            ),
            Step::Unsettled { fewest } => {
                write!(f, " → {fewest} would keep p95 wait ≤ {max_wait}s, but the rates are not settled yet: {n} kept")
            }
            Step::Draining { fewest } => write!(
                f,
                " → {fewest} would keep p95 wait ≤ {max_wait}s, but tasks are waiting and every worker is busy: {n} kept until the backlog drains"
            ),
            Step::NoDuration => {
                write!(f, " → task duration unknown (set objective.task_seconds): {n} replicas, one slot per task")
            }
        }
    }
}

/// Two significant digits, at most three decimals: `5.2`, `0.41`, `120`.
fn rate(value: f64) -> String {
    if !value.is_finite() {
        return "∞".to_owned();
    }
    let magnitude = if value > 0.0 { value.abs().log10().floor() as i32 } else { 0 };
    let decimals = (1 - magnitude).clamp(0, 3) as usize;
    format!("{value:.decimals$}")
}

fn count(value: f64) -> String {
    format!("{}", value.round() as u64)
}

fn seconds(value: f64) -> String {
    if value.is_finite() { format!("{}s", value.ceil() as u64) } else { "∞ (cannot keep up)".to_owned() }
}

#[cfg(test)]
mod tests;
