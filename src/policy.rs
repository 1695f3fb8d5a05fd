//! The decision core: from trigger observations to a replica count, with a reason.
//!
//! Pure and deterministic: std only, nothing asynchronous, no clock reads, no logging. Time is a
//! [`Duration`] since an arbitrary origin, passed in, so the daemon (monotonic clock) and the
//! simulator (virtual seconds) drive exactly the same code.
//!
//! ```text
//! observations ─► recommend: per_replica: ceil(value / per_replica), activation
//!                            objective:   load estimate ─► queueing model ─► fewest replicas
//!                                         meeting max_wait, with hysteresis (objective.rs)
//!              ─► max over triggers ─► failures (hold or fallback; a failed poll never lowers)
//!              ─► behavior  (HPA stabilization windows and rate policies)
//!              ─► cooldown, N→0 only from 1, clamp to [min, max] ─► Decision
//! ```

mod backlog;
mod behavior;
pub mod load;
pub mod objective;
pub mod partitions;
pub mod queueing;
mod reason;
mod spec;
pub mod spot;
mod startup;

pub use behavior::History;
pub use load::{Load, Runtimes};
pub use objective::{Objective, Prediction};
pub use reason::{Bound, Driver, Limit, Reason};
pub use spec::{Fallback, RatePolicy, RateUnit, ScalingRules, Select, TargetPolicy, TriggerPolicy};

use std::time::Duration;

/// What one trigger's source said in this poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// The source answered.
    Answered(Sample),
    /// The poll failed; the value is unknown.
    Failed,
}

/// What a source answered.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// The value a `per_replica` trigger divides: queue depth, lag, task count.
    pub value: f64,
    /// The most replicas this value can use (a Kafka group cannot use more consumers than its
    /// topics have partitions).
    pub cap: Option<u32>,
    /// Round what the trigger asks for up to a factor of `cap`, so that every consumer gets as
    /// many partitions (`ensure_even_distribution`).
    pub even: bool,
    /// What the source knows of the load behind the value, for the wait objective.
    pub load: Load,
}

impl Observation {
    /// A plain value, with nothing known of the load behind it but that it is waiting.
    pub fn value(value: f64) -> Observation {
        Observation::Answered(Sample {
            value,
            cap: None,
            even: false,
            load: Load { waiting: value, ..Load::default() },
        })
    }

    /// A value whose recommendation may not exceed `cap`.
    pub fn capped(value: f64, cap: u32) -> Observation {
        Observation::Answered(Sample {
            value,
            cap: Some(cap),
            even: false,
            load: Load { waiting: value, ..Load::default() },
        })
    }

    /// The value, if the poll answered.
    pub fn answered_value(&self) -> Option<f64> {
        match self {
            Observation::Answered(sample) => Some(sample.value),
            Observation::Failed => None,
        }
    }

    fn is_failed(&self) -> bool {
        matches!(self, Observation::Failed)
    }
}

/// A pause set by an operator on the Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pause {
    #[default]
    None,
    /// `queue-autoscaler.io/paused: "true"`: the Deployment is never written.
    Frozen,
    /// `queue-autoscaler.io/paused-replicas: "N"`: pinned to N (within bounds).
    Pinned(u32),
}

/// Everything [`decide`] needs to know about this instant.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The Deployment's current `spec.replicas`.
    pub current: u32,
    /// Replicas ready to take tasks (`status.readyReplicas`), where known.
    pub ready: Option<u32>,
    /// One observation per trigger, in the order of [`TargetPolicy::triggers`].
    pub observations: &'a [Observation],
    pub pause: Pause,
    /// Time since an arbitrary, fixed origin.
    pub now: Duration,
}

/// The outcome of one decision: how many replicas, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The replicas the target should have.
    pub replicas: u32,
    /// Per trigger, what it asks for (`ceil(value / per_replica)`, or the objective's replicas),
    /// or `None` when its poll failed.
    pub recommended: Vec<Option<u32>>,
    /// Per trigger, with an objective: what the queueing model predicted.
    pub predictions: Vec<Option<Prediction>>,
    pub reason: Reason,
}

/// What one trigger asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ask {
    replicas: u32,
    prediction: Option<Prediction>,
}

impl Decision {
    /// Whether the Deployment should be written (a pause freezes it whatever the count).
    pub fn should_write(&self, current: u32) -> bool {
        self.replicas != current && self.reason != Reason::Paused
    }

    /// The objective's prediction for the trigger that asks for the most replicas.
    pub fn prediction(&self) -> Option<&Prediction> {
        self.predictions.iter().flatten().rev().max_by_key(|p| p.replicas)
    }

    /// Whether the metrics drive this decision down from `current` (the case busy-worker
    /// protection looks at; an operator's pin or the bounds are obeyed as they are).
    pub fn is_metric_scale_down(&self, current: u32) -> bool {
        self.replicas < current && matches!(self.reason, Reason::Metric { .. })
    }

    /// Never scales down below the worker pods running tasks: a metric-driven scale-down stops
    /// at `min(busy, current)`, so no running task has to be killed.
    pub fn protect_busy(&mut self, current: u32, busy: u32) {
        let floor = busy.min(current);
        if self.is_metric_scale_down(current) && self.replicas < floor {
            self.replicas = floor;
            self.set_limit(Limit::BusyWorkers { busy });
        }
    }

    /// For a StatefulSet, which removes its highest ordinals first: a metric-driven scale-down
    /// stops at `min(ordinal + 1, current)`, keeping `pod` (the busy pod of that ordinal).
    pub fn protect_busy_ordinal(&mut self, current: u32, pod: &str, ordinal: u32) {
        let floor = ordinal.saturating_add(1).min(current);
        if self.is_metric_scale_down(current) && self.replicas < floor {
            self.replicas = floor;
            self.set_limit(Limit::BusyOrdinal { pod: pod.to_owned() });
        }
    }

    /// Holds a metric-driven scale-down when the busy workers could not be learned: like a
    /// failed poll, an unknown never scales down.
    pub fn hold_busy_unknown(&mut self, current: u32) {
        if self.is_metric_scale_down(current) {
            self.replicas = current;
            self.set_limit(Limit::BusyUnknown);
        }
    }

    fn set_limit(&mut self, new: Limit) {
        if let Reason::Metric { limit, .. } = &mut self.reason {
            *limit = Some(new);
        }
    }
}

/// Decides the replicas of one target. Total: every input has an answer.
///
/// `history` carries what the time-based rules need (recommendations, past rescales, failure
/// streak, load estimates); call [`History::record_rescale`] after a rescale has been applied.
pub fn decide(policy: &TargetPolicy, history: &mut History, inputs: &Inputs) -> Decision {
    history.seed(inputs.current, inputs.now);
    history.observe_ready(inputs.ready, inputs.now);
    let asks = ask_each(policy, history, inputs);
    let failed = inputs.observations.iter().filter(|o| o.is_failed()).count();
    history.count_failures(failed > 0);
    let (replicas, reason) = match inputs.pause {
        Pause::Frozen => (inputs.current, Reason::Paused),
        Pause::Pinned(n) => (policy.clamp(n), Reason::PausedReplicas { replicas: n }),
        Pause::None => decide_unpaused(policy, history, inputs, &asks, failed),
    };
    let recommended = asks.iter().map(|a| a.map(|a| a.replicas)).collect();
    let predictions = asks.iter().map(|a| a.and_then(|a| a.prediction)).collect();
    Decision { replicas, recommended, predictions, reason }
}

fn decide_unpaused(
    policy: &TargetPolicy,
    history: &mut History,
    inputs: &Inputs,
    asks: &[Option<Ask>],
    failed: usize,
) -> (u32, Reason) {
    let current = inputs.current;
    if failed > 0 && history.failures() >= policy.fallback_threshold {
        return fallback(policy, current, history.failures());
    }
    let Some(wanted) = wanted(policy, inputs.observations, asks) else {
        return hold_on_failure(policy, inputs, history.failures());
    };
    if failed > 0 && wanted <= current {
        return hold_on_failure(policy, inputs, history.failures());
    }
    if let Some(bound) = policy.out_of_bounds(current) {
        return (policy.clamp(current), Reason::OutOfBounds { current, bound });
    }
    let recommended: Vec<Option<u32>> = asks.iter().map(|a| a.map(|a| a.replicas)).collect();
    let mut driver = Driver::pick(policy, inputs.observations, &recommended);
    if let Some(driver) = &mut driver {
        driver.prediction = asks[driver.index].and_then(|a| a.prediction).map(Box::new);
    }
    let (replicas, limit) = limit(policy, history, current, wanted, inputs.now);
    (policy.clamp(replicas), Reason::Metric { driver, wanted, limit, failed })
}

/// What each trigger asks for; `None` for a failed poll. With an objective, every answered
/// trigger's load estimate is brought up to date, paused or not.
fn ask_each(policy: &TargetPolicy, history: &mut History, inputs: &Inputs) -> Vec<Option<Ask>> {
    policy
        .triggers
        .iter()
        .zip(inputs.observations)
        .map(|(trigger, observation)| {
            let Observation::Answered(sample) = observation else { return None };
            let (replicas, prediction) = match &policy.objective {
                Some(objective) => {
                    let prediction =
                        history.predict(objective, &trigger.source, sample.load, inputs, policy.max_replicas);
                    (prediction.replicas, Some(prediction))
                }
                None => (trigger.recommend(sample.value), None),
            };
            let replicas = match sample.cap {
                Some(partitions) if sample.even => partitions::round_up_to_factor(replicas, partitions).min(partitions),
                Some(cap) => replicas.min(cap),
                None => replicas,
            };
            Some(Ask { replicas, prediction })
        })
        .collect()
}

/// The replicas the metrics ask for before any limit: the maximum over the triggers that
/// answered — with KEDA's activation rule when `min_replicas` is 0 and the target sizes by ratio
/// (an objective decides zero itself, from its idle rule). `None` when none answered.
fn wanted(policy: &TargetPolicy, observations: &[Observation], asks: &[Option<Ask>]) -> Option<u32> {
    let highest = asks.iter().flatten().map(|a| a.replicas).max()?;
    if policy.min_replicas > 0 || policy.objective.is_some() {
        return Some(highest);
    }
    // An unknown value may be above activation: never deactivate on a failed poll.
    let active = policy
        .triggers
        .iter()
        .zip(observations)
        .any(|(trigger, observation)| observation.answered_value().is_none_or(|value| value > trigger.activation));
    Some(if active { highest.max(1) } else { 0 })
}

/// Stabilization, rate policies, cooldown and the N→0 rule, in that order.
fn limit(
    policy: &TargetPolicy,
    history: &mut History,
    current: u32,
    wanted: u32,
    now: Duration,
) -> (u32, Option<Limit>) {
    let (replicas, mut limit) = history.normalize(policy, current, wanted, now);
    if replicas != wanted && replicas == policy.clamp(wanted) {
        // Exactly what the metrics ask for, within bounds: the bound is the reason, whatever
        // else agreed with it.
        limit = policy.out_of_bounds(wanted).map(Limit::Bound);
    }
    if replicas < current {
        if let Some(remaining) = history.cooldown_remaining(policy.cooldown, now) {
            return (current, Some(Limit::Cooldown { remaining }));
        }
        // Going to zero removes the last worker: only ever from 1, so N→0 is two steps with a
        // cooldown between them, never a jump (KEDA #7770).
        if replicas == 0 && current > 1 {
            return (1, Some(Limit::StepToOne));
        }
    }
    (replicas, limit)
}

fn fallback(policy: &TargetPolicy, current: u32, failures: u32) -> (u32, Reason) {
    let replicas = match policy.fallback {
        Fallback::Hold => current,
        // The fallback may raise replicas but, like any failed poll, never lowers them.
        Fallback::Replicas(n) => n.max(current),
    };
    (policy.clamp(replicas), Reason::Fallback { failures, fallback: policy.fallback })
}

fn hold_on_failure(policy: &TargetPolicy, inputs: &Inputs, failures: u32) -> (u32, Reason) {
    let failed_sources = policy
        .triggers
        .iter()
        .zip(inputs.observations)
        .filter(|(_, o)| o.is_failed())
        .map(|(t, _)| t.source.clone())
        .collect();
    (policy.clamp(inputs.current), Reason::HeldOnFailure { failed: failed_sources, failures })
}

#[cfg(test)]
mod tests;
