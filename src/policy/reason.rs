//! Why a decision came out as it did: a stable `label()` for metrics and Events, and a short
//! human sentence (`Display`) for logs, `once` and the Event note.

use std::fmt;
use std::time::Duration;

use super::{Fallback, Observation, Prediction, RatePolicy, TargetPolicy};

/// Why the decision is what it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Paused by annotation: never written.
    Paused,
    /// Pinned by annotation to this many replicas (then clamped to the bounds).
    PausedReplicas { replicas: u32 },
    /// The Deployment was outside `[min, max]`; brought back to the bound.
    OutOfBounds { current: u32, bound: Bound },
    /// Driven by the metrics.
    Metric {
        /// The trigger with the highest recommendation (`None` without triggers).
        driver: Option<Driver>,
        /// What the metrics asked for, before any limit.
        wanted: u32,
        /// What held the result away from `wanted`, if anything.
        limit: Option<Limit>,
        /// Triggers whose poll failed this time (only a scale-up goes ahead then).
        failed: usize,
    },
    /// A trigger's poll failed and the others did not ask for more: replicas held.
    HeldOnFailure { failed: Vec<String>, failures: u32 },
    /// `failures` consecutive failed polls reached the threshold.
    Fallback { failures: u32, fallback: Fallback },
}

/// A replica bound of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Min(u32),
    Max(u32),
}

/// The trigger that asked for the most replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    /// Its position among the target's triggers.
    pub index: usize,
    pub source: String,
    pub value: f64,
    /// Whether the target was active (any value above its activation; always with min ≥ 1).
    pub active: bool,
    /// The cap on this trigger's recommendation (a Kafka topic's partitions), if it had one.
    pub cap: Option<u32>,
    /// With an objective: what the queueing model predicted for this trigger (boxed: it is
    /// large beside the other reasons).
    pub prediction: Option<Box<Prediction>>,
}

/// What kept the decision from what the metrics wanted.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    UpStabilized {
        window: Duration,
    },
    DownStabilized {
        window: Duration,
    },
    UpPolicy {
        policy: RatePolicy,
        allowed: u32,
    },
    DownPolicy {
        policy: RatePolicy,
        allowed: u32,
    },
    UpDisabled,
    DownDisabled,
    Bound(Bound),
    Cooldown {
        remaining: Duration,
    },
    /// Scale-in to zero goes through 1 first.
    StepToOne,
    /// A scale-down stopped at the number of worker pods running tasks.
    BusyWorkers {
        busy: u32,
    },
    /// A StatefulSet's scale-down stopped just above its highest busy pod, which this names: a
    /// StatefulSet removes its highest ordinals first.
    BusyOrdinal {
        pod: String,
    },
    /// A scale-down held because which workers are busy could not be learned.
    BusyUnknown,
}

impl Reason {
    /// Every label [`Reason::label`] can return.
    pub const LABELS: [&'static str; 18] = [
        "paused",
        "paused_replicas",
        "out_of_bounds",
        "metric",
        "held_on_failure",
        "fallback",
        "scale_up_stabilized",
        "scale_down_stabilized",
        "scale_up_policy",
        "scale_down_policy",
        "scale_up_disabled",
        "scale_down_disabled",
        "max_replicas",
        "min_replicas",
        "cooldown",
        "step_to_one",
        "busy_workers",
        "busy_unknown",
    ];

    /// A short, stable identifier for metric labels and Event reasons.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Paused => "paused",
            Reason::PausedReplicas { .. } => "paused_replicas",
            Reason::OutOfBounds { .. } => "out_of_bounds",
            Reason::Metric { limit: Some(limit), .. } => limit.label(),
            Reason::Metric { limit: None, .. } => "metric",
            Reason::HeldOnFailure { .. } => "held_on_failure",
            Reason::Fallback { .. } => "fallback",
        }
    }
}

impl Limit {
    pub fn label(&self) -> &'static str {
        match self {
            Limit::UpStabilized { .. } => "scale_up_stabilized",
            Limit::DownStabilized { .. } => "scale_down_stabilized",
            Limit::UpPolicy { .. } => "scale_up_policy",
            Limit::DownPolicy { .. } => "scale_down_policy",
            Limit::UpDisabled => "scale_up_disabled",
            Limit::DownDisabled => "scale_down_disabled",
            Limit::Bound(Bound::Max(_)) => "max_replicas",
            Limit::Bound(Bound::Min(_)) => "min_replicas",
            Limit::Cooldown { .. } => "cooldown",
            Limit::StepToOne => "step_to_one",
            Limit::BusyWorkers { .. } | Limit::BusyOrdinal { .. } => "busy_workers",
            Limit::BusyUnknown => "busy_unknown",
        }
    }
}

impl Driver {
    /// The trigger with the highest recommendation among those that answered.
    pub(super) fn pick(
        policy: &TargetPolicy,
        observations: &[Observation],
        recommended: &[Option<u32>],
    ) -> Option<Driver> {
        let active = policy.min_replicas > 0
            || policy.objective.is_some()
            || policy
                .triggers
                .iter()
                .zip(observations)
                .any(|(t, o)| o.answered_value().is_none_or(|v| v > t.activation));
        let (index, _) = recommended
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .rev() // max_by_key keeps the last maximum: reversed, the first trigger wins ties
            .max_by_key(|(_, r)| *r)?;
        let Observation::Answered(sample) = observations[index] else { return None };
        let source = policy.triggers[index].source.clone();
        Some(Driver { index, source, value: sample.value, active, cap: sample.cap, prediction: None })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Paused => write!(f, "paused by annotation queue-autoscaler.io/paused"),
            Reason::PausedReplicas { replicas } => {
                write!(f, "pinned to {replicas} by annotation queue-autoscaler.io/paused-replicas")
            }
            Reason::OutOfBounds { current, bound: Bound::Max(max) } => {
                write!(f, "current {current} above max_replicas {max}")
            }
            Reason::OutOfBounds { current, bound: Bound::Min(min) } => {
                write!(f, "current {current} below min_replicas {min}")
            }
            Reason::Metric { driver, wanted, limit, failed } => {
                match driver {
                    Some(Driver { source, prediction: Some(prediction), .. }) => write!(f, "{source}: {prediction}")?,
                    Some(Driver { source, value, active: true, cap: Some(cap), .. }) => {
                        write!(f, "{source}={value} (at most {cap}: its partitions) → {wanted} wanted")?
                    }
                    Some(Driver { source, value, active: true, cap: None, .. }) => {
                        write!(f, "{source}={value} → {wanted} wanted")?
                    }
                    Some(d) => {
                        write!(f, "{}={} (every trigger at or below activation) → {wanted} wanted", d.source, d.value)?
                    }
                    None => write!(f, "{wanted} wanted")?,
                }
                if let Some(limit) = limit {
                    write!(f, ", {limit}")?;
                }
                if *failed > 0 {
                    write!(f, "; {failed} trigger(s) failed, so only a scale-up may go ahead")?;
                }
                Ok(())
            }
            Reason::HeldOnFailure { failed, failures } => write!(
                f,
                "poll failed for {} ({failures} in a row): holding replicas, a failed poll never scales down",
                failed.join(", ")
            ),
            Reason::Fallback { failures, fallback: Fallback::Hold } => {
                write!(f, "{failures} failed polls in a row: fallback holds replicas")
            }
            Reason::Fallback { failures, fallback: Fallback::Replicas(n) } => {
                write!(f, "{failures} failed polls in a row: fallback to at least {n} replicas")
            }
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::UpStabilized { window } => {
                write!(f, "held by the {}s scale-up stabilization window", window.as_secs())
            }
            Limit::DownStabilized { window } => {
                write!(f, "held by the {}s scale-down stabilization window", window.as_secs())
            }
            Limit::UpPolicy { policy, allowed } => write!(f, "capped by scale-up policy {policy} → {allowed}"),
            Limit::DownPolicy { policy, allowed } => write!(f, "limited by scale-down policy {policy} → {allowed}"),
            Limit::UpDisabled => write!(f, "scale-up disabled (select = \"disabled\")"),
            Limit::DownDisabled => write!(f, "scale-down disabled (select = \"disabled\")"),
            Limit::Bound(Bound::Max(max)) => write!(f, "capped at max_replicas {max}"),
            Limit::Bound(Bound::Min(min)) => write!(f, "floored at min_replicas {min}"),
            Limit::Cooldown { remaining } => {
                write!(f, "scale-down held by cooldown ({}s left)", remaining.as_secs_f64().ceil())
            }
            Limit::StepToOne => write!(f, "scaling to 1 first (never straight from N to 0)"),
            Limit::BusyWorkers { busy } => write!(f, "held up by {busy} worker pod(s) running tasks"),
            Limit::BusyOrdinal { pod } => {
                write!(f, "held up by {pod}, which runs tasks (a StatefulSet removes its highest ordinals first)")
            }
            Limit::BusyUnknown => write!(f, "scale-down held: which workers are busy is unknown"),
        }
    }
}
