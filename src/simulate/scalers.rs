//! What sizes the fleet in a simulation: the daemon's own policy, or a model of KEDA + the HPA
//! with their defaults; both place their totals on on-demand and spot with the same arithmetic.

use std::time::Duration;

use super::hpa::{Hpa, Metric};
use crate::config::Target;
use crate::policy::spot::{self, Split, SpotHistory, SpotPolicy};
use crate::policy::{self, History, Inputs, Observation, Pause, Sample, TargetPolicy};

/// What the sources report at one poll, one sample per trigger, and the ready replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    pub samples: Vec<Sample>,
    pub ready: u32,
}

/// Decides, at the seconds it is due, how many replicas each capacity type should have.
pub trait Scaler {
    /// Whether it looks at the queue at second `t`.
    fn due(&self, t: u64) -> bool;
    /// The replicas wanted at second `t`, given what the sources report and the replicas
    /// provisioned now; `None` when it leaves them as they are.
    fn decide(&mut self, t: u64, poll: &Poll, provisioned: Split) -> Option<Split>;
    /// The arrival rate it estimated at its last decision, if it estimates one.
    fn arrival_estimate(&self) -> Option<f64> {
        None
    }
}

/// The on-demand/spot split of a total, as the daemon places it (the simulated spot replicas are
/// interrupted and replaced, never left unschedulable, so the shortfall stays 0).
struct Placement {
    spot: Option<(SpotPolicy, SpotHistory)>,
    max: u32,
    /// Stand-ins placed last time (not part of the totals a scaler decides).
    extra: u32,
}

impl Placement {
    fn new(target: &Target) -> Placement {
        let spot = target.spot.as_ref().map(|s| (s.policy.clone(), SpotHistory::new()));
        Placement { spot, max: target.policy.max_replicas, extra: 0 }
    }

    /// The total a scaler decided from, without last time's stand-ins.
    fn total(&self, provisioned: Split) -> u32 {
        provisioned.total().saturating_sub(self.extra)
    }

    fn place(&mut self, total: u32, now: Duration) -> Split {
        match &mut self.spot {
            Some((policy, history)) => {
                let placement = spot::place(policy, self.max, total, 0, history, now);
                self.extra = placement.extra;
                placement.split
            }
            None => Split { on_demand: total, spot: 0 },
        }
    }
}

/// The daemon's policy, polled at the target's interval, with its spot split.
pub struct Ours {
    policy: TargetPolicy,
    history: History,
    interval: u64,
    placement: Placement,
    estimate: Option<f64>,
}

impl Ours {
    pub fn new(target: &Target) -> Ours {
        Ours {
            policy: target.policy.clone(),
            history: History::new(),
            interval: target.interval.as_secs().max(1),
            placement: Placement::new(target),
            estimate: None,
        }
    }
}

impl Scaler for Ours {
    fn due(&self, t: u64) -> bool {
        t.is_multiple_of(self.interval)
    }

    fn decide(&mut self, t: u64, poll: &Poll, provisioned: Split) -> Option<Split> {
        let current = self.placement.total(provisioned);
        let observations: Vec<Observation> = poll.samples.iter().map(|s| Observation::Answered(*s)).collect();
        let now = Duration::from_secs(t);
        let ready = Some(poll.ready.min(current));
        let inputs = Inputs { current, ready, observations: &observations, pause: Pause::None, now };
        let decision = policy::decide(&self.policy, &mut self.history, &inputs);
        self.estimate = decision.prediction().map(|p| p.estimate.arrival_rate);
        if decision.should_write(current) {
            self.history.record_rescale(&self.policy, current, decision.replicas, now);
        }
        Some(self.placement.place(decision.replicas, now))
    }

    fn arrival_estimate(&self) -> Option<f64> {
        self.estimate
    }
}

/// KEDA's defaults (kedacore/keda `pkg/scaling/scale_handler.go`, `executor/scale_scaledobjects.go`):
/// the operator polls every 30 s and owns 0 ↔ 1 — it activates when a value is above its
/// activation threshold and, once nothing has been active for the 300 s cooldown, scales straight
/// to 0 from any N (kedacore/keda#7770); the HPA ([`Hpa`]) syncs every 15 s while replicas ≥ 1.
pub struct Keda {
    min: u32,
    /// Each trigger's (per replica, activation): one HPA metric each; active if any is.
    triggers: Vec<(f64, f64)>,
    hpa: Hpa,
    last_active: Option<u64>,
    placement: Placement,
}

pub const KEDA_POLLING_INTERVAL: u64 = 30;
pub const KEDA_COOLDOWN: u64 = 300;
pub const HPA_SYNC_PERIOD: u64 = 15;

impl Keda {
    /// The model for a target's bounds and triggers, each with KEDA's `per_replica`: the
    /// trigger's own, or `per_replica` where the trigger has none (an objective target).
    pub fn new(target: &Target, per_replica: Option<f64>) -> Keda {
        let min = target.policy.min_replicas;
        let triggers = target
            .policy
            .triggers
            .iter()
            .map(|t| (per_replica.or(t.per_replica).unwrap_or(1.0), t.activation))
            .collect();
        Keda {
            min,
            triggers,
            // The HPA that KEDA creates has minReplicas = max(minReplicaCount, 1).
            hpa: Hpa::new(min.max(1), target.policy.max_replicas),
            last_active: None,
            placement: Placement::new(target),
        }
    }
}

impl Scaler for Keda {
    fn due(&self, t: u64) -> bool {
        t.is_multiple_of(KEDA_POLLING_INTERVAL) || t.is_multiple_of(HPA_SYNC_PERIOD)
    }

    fn decide(&mut self, t: u64, poll: &Poll, provisioned: Split) -> Option<Split> {
        let value = |i: usize| poll.samples.get(i).map_or(0.0, |s| s.value);
        let mut replicas = self.placement.total(provisioned);
        let mut decided = false;
        if t.is_multiple_of(KEDA_POLLING_INTERVAL) {
            let active = self.triggers.iter().enumerate().any(|(i, (_, activation))| value(i) > *activation);
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
                replicas = 0;
                decided = true;
            }
        }
        if t.is_multiple_of(HPA_SYNC_PERIOD) && replicas > 0 && !decided {
            let metrics: Vec<Metric> = self
                .triggers
                .iter()
                .enumerate()
                .map(|(i, (per_replica, _))| Metric { usage: value(i), target_per_pod: *per_replica })
                .collect();
            replicas = self.hpa.reconcile(t, replicas, replicas, &metrics);
            decided = true;
        }
        decided.then(|| self.placement.place(replicas, Duration::from_secs(t)))
    }
}
