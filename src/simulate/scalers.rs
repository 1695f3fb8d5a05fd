//! What sizes the fleet in a simulation: the daemon's own policy, or a model of KEDA + the HPA
//! with their defaults.

use std::time::Duration;

use crate::config::Target;
use crate::policy::spot::{self, Split, SpotHistory, SpotPolicy};
use crate::policy::{self, History, Inputs, Observation, Pause, ScalingRules, TargetPolicy};

/// Decides, at the seconds it is due, how many replicas each capacity type should have.
pub trait Scaler {
    /// The replicas wanted at second `t`, given the backlog the sources would report and the
    /// replicas provisioned now; `None` when nothing is due this second.
    fn decide(&mut self, t: u64, backlog: f64, provisioned: Split) -> Option<Split>;
}

/// The daemon's policy, polled at the target's interval, with its spot split.
pub struct Ours {
    policy: TargetPolicy,
    history: History,
    interval: u64,
    spot: Option<(SpotPolicy, SpotHistory)>,
    /// Stand-ins placed last time (not part of the totals the policy decides).
    extra: u32,
}

impl Ours {
    pub fn new(target: &Target) -> Ours {
        Ours {
            policy: target.policy.clone(),
            history: History::new(),
            interval: target.interval.as_secs().max(1),
            spot: target.spot.as_ref().map(|s| (s.policy.clone(), SpotHistory::new())),
            extra: 0,
        }
    }
}

impl Scaler for Ours {
    fn decide(&mut self, t: u64, backlog: f64, provisioned: Split) -> Option<Split> {
        if !t.is_multiple_of(self.interval) {
            return None;
        }
        let current = provisioned.total().saturating_sub(self.extra);
        // Every trigger sees the one simulated queue.
        let observations = vec![Observation::Value(backlog); self.policy.triggers.len()];
        let now = Duration::from_secs(t);
        let inputs = Inputs { current, observations: &observations, pause: Pause::None, now };
        let decision = policy::decide(&self.policy, &mut self.history, &inputs);
        if decision.should_write(current) {
            self.history.record_rescale(&self.policy, current, decision.replicas, now);
        }
        // The seam for spot: the same placement as the daemon's. The simulated spot replicas
        // are interrupted and replaced, never left unschedulable, so the shortfall stays 0.
        let split = match &mut self.spot {
            Some((policy, history)) => {
                let placement = spot::place(policy, self.policy.max_replicas, decision.replicas, 0, history, now);
                self.extra = placement.extra;
                placement.split
            }
            None => Split { on_demand: decision.replicas, spot: 0 },
        };
        Some(split)
    }
}

/// KEDA's defaults: the operator polls every 30 s and owns 0 ↔ 1 (activation, and a 300 s
/// cooldown after which it scales straight to 0 from any N); the HPA syncs every 15 s when
/// replicas ≥ 1, with the 10 % tolerance and its default behavior.
pub struct Keda {
    min: u32,
    /// Each trigger's (per replica, activation): one HPA metric each; active if any is.
    triggers: Vec<(f64, f64)>,
    hpa: TargetPolicy,
    history: History,
    last_active: Option<u64>,
}

/// KEDA defaults (keda.md §4) and the HPA's (k8s.md §1.1).
pub const KEDA_POLLING_INTERVAL: u64 = 30;
pub const KEDA_COOLDOWN: u64 = 300;
pub const HPA_SYNC_PERIOD: u64 = 15;
pub const HPA_TOLERANCE: f64 = 0.1;

impl Keda {
    /// The model for a target's bounds and triggers.
    pub fn new(target: &Target) -> Keda {
        let min = target.policy.min_replicas;
        let hpa = TargetPolicy {
            // The HPA that KEDA creates has minReplicas = max(minReplicaCount, 1).
            min_replicas: min.max(1),
            max_replicas: target.policy.max_replicas,
            triggers: Vec::new(),
            scale_up: ScalingRules::hpa_scale_up(),
            scale_down: ScalingRules::hpa_scale_down(),
            cooldown: Duration::ZERO,
            fallback_threshold: u32::MAX,
            fallback: policy::Fallback::Hold,
        };
        Keda {
            min,
            triggers: target.policy.triggers.iter().map(|t| (t.per_replica, t.activation)).collect(),
            hpa,
            history: History::new(),
            last_active: None,
        }
    }
}

impl Scaler for Keda {
    fn decide(&mut self, t: u64, backlog: f64, provisioned: Split) -> Option<Split> {
        let mut replicas = provisioned.total();
        let mut decided = false;
        if t.is_multiple_of(KEDA_POLLING_INTERVAL) {
            let active = self.triggers.iter().any(|(_, activation)| backlog > *activation);
            if active {
                self.last_active = Some(t);
            }
            if replicas == 0 && active {
                replicas = self.min.max(1);
                decided = true;
            } else if replicas > 0
                && !active
                && self.min == 0
                && self.last_active.is_none_or(|at| t > at + KEDA_COOLDOWN)
            {
                // Once lastActiveTime + cooldownPeriod is before now, from any N straight to 0
                // (kedacore/keda#7770).
                replicas = 0;
                decided = true;
            }
        }
        if t.is_multiple_of(HPA_SYNC_PERIOD) && replicas > 0 && !decided {
            // The HPA takes the highest proposal over its metrics (one per trigger).
            let desired = self
                .triggers
                .iter()
                .map(|(per_replica, _)| policy::hpa_average_value(backlog, *per_replica, replicas, HPA_TOLERANCE))
                .max()
                .unwrap_or(replicas);
            let now = Duration::from_secs(t);
            let next = policy::hpa_normalize(&self.hpa, &mut self.history, replicas, desired, now);
            if next != replicas {
                self.history.record_rescale(&self.hpa, replicas, next, now);
                replicas = next;
            }
            decided = true;
        }
        // KEDA has no spot placement: everything runs on-demand.
        decided.then_some(Split { on_demand: replicas, spot: 0 })
    }
}
