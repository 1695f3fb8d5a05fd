//! The rules of one target, as validated values (built by `config`, or by tests and the simulator).

use std::fmt;
use std::time::Duration;

/// How one target turns observations into replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPolicy {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub triggers: Vec<TriggerPolicy>,
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
    /// No scale-down until this long after the last rescale.
    pub cooldown: Duration,
    /// Consecutive failed polls (of any trigger) before [`Fallback`] applies.
    pub fallback_threshold: u32,
    pub fallback: Fallback,
    /// Size for a wait instead of a per-replica ratio.
    pub objective: Option<super::Objective>,
}

/// One source feeding a target.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerPolicy {
    /// The source's name, for reasons.
    pub source: String,
    /// How much of the source's value one replica handles (KEDA's AverageValue target); optional
    /// with an objective (then only `simulate --baseline keda` uses it).
    pub per_replica: Option<f64>,
    /// With `min_replicas = 0`, the target is active only while some value exceeds this.
    pub activation: f64,
}

/// HPA `behavior` for one direction (autoscaling/v2 `HPAScalingRules`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    pub stabilization: Duration,
    pub policies: Vec<RatePolicy>,
    pub select: Select,
}

/// One rate policy: at most `value` pods, or `value` percent, per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    pub unit: RateUnit,
    pub value: u32,
    pub period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Pods,
    Percent,
}

/// Which rate policy wins when there are several (HPA `selectPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Select {
    /// The policy that allows the largest change.
    #[default]
    Max,
    /// The policy that allows the smallest change.
    Min,
    /// No change in this direction at all.
    Disabled,
}

/// What to do after too many consecutive failed polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Keep the current replicas.
    #[default]
    Hold,
    /// Go to at least this many replicas (a failed poll never lowers them).
    Replicas(u32),
}

impl TargetPolicy {
    /// The value clamped to `[min_replicas, max_replicas]`.
    pub fn clamp(&self, replicas: u32) -> u32 {
        replicas.clamp(self.min_replicas, self.max_replicas.max(self.min_replicas))
    }

    pub(crate) fn out_of_bounds(&self, current: u32) -> Option<super::Bound> {
        if current < self.min_replicas {
            Some(super::Bound::Min(self.min_replicas))
        } else if current > self.max_replicas {
            Some(super::Bound::Max(self.max_replicas))
        } else {
            None
        }
    }
}

impl TriggerPolicy {
    /// `ceil(value / per_replica)` (a trigger without `per_replica`, which only an objective
    /// target has, counts one per replica). Negative and NaN values count as 0 and huge values
    /// saturate, so no outside value can make this panic or wrap.
    pub fn recommend(&self, value: f64) -> u32 {
        let per_replica = self.per_replica.unwrap_or(1.0);
        let ratio = if value.is_nan() || value <= 0.0 { 0.0 } else { (value / per_replica).ceil() };
        // `as` saturates float → int casts (Rust reference, "numeric cast").
        ratio as u32
    }
}

impl ScalingRules {
    /// The HPA default for scaling up: +4 pods or +100% per 15 s, whichever is more, no window.
    pub fn hpa_scale_up() -> Self {
        ScalingRules {
            stabilization: Duration::ZERO,
            policies: vec![
                RatePolicy { unit: RateUnit::Pods, value: 4, period: Duration::from_secs(15) },
                RatePolicy { unit: RateUnit::Percent, value: 100, period: Duration::from_secs(15) },
            ],
            select: Select::Max,
        }
    }

    /// The HPA default for scaling down: −100% per 15 s after a 300 s stabilization window.
    pub fn hpa_scale_down() -> Self {
        ScalingRules {
            stabilization: Duration::from_secs(300),
            policies: vec![RatePolicy { unit: RateUnit::Percent, value: 100, period: Duration::from_secs(15) }],
            select: Select::Max,
        }
    }

    /// An objective's default for scaling up: no window, no rate limit (the queueing model has
    /// already planned for the start-up delay; holding back would only break the objective).
    pub fn unlimited() -> Self {
        ScalingRules { stabilization: Duration::ZERO, policies: Vec::new(), select: Select::Max }
    }

    /// An objective's default for scaling down: no window (the objective's hysteresis and its
    /// smoothed rates stop flapping), −100 % per 15 s.
    pub fn objective_scale_down() -> Self {
        ScalingRules { stabilization: Duration::ZERO, ..ScalingRules::hpa_scale_down() }
    }

    pub(crate) fn longest_period(&self) -> Duration {
        self.policies.iter().map(|p| p.period).max().unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for RatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            RateUnit::Pods => "pods",
            RateUnit::Percent => "percent",
        };
        let period = self.period;
        match period.subsec_millis() {
            0 => write!(f, "{unit}={}/{}s", self.value, period.as_secs()),
            _ => write!(f, "{unit}={}/{}ms", self.value, period.as_millis()),
        }
    }
}
