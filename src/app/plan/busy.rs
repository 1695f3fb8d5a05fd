//! Busy-aware scale-in, as data: which worker pods run tasks, the floor they set under a
//! scale-down, and the deletion costs that make the ReplicaSet remove idle pods first.

use std::collections::BTreeMap;

use super::{CostPatch, ScaleWrite};
use crate::config::Target;
use crate::k8s::pods::{self, WorkerPod};
use crate::policy::{Decision, Reason};

/// What a plan knows about the target's busy workers.
#[derive(Debug, Clone)]
pub(in crate::app) enum Busy {
    /// Not learned: no protection, or nothing to protect against yet.
    NotAsked,
    /// Could not be learned: nothing goes down.
    Unknown,
    Known(BusyPods),
}

/// Running tasks per hostname, and the pods of each Deployment.
#[derive(Debug, Clone, Default)]
pub(in crate::app) struct BusyPods {
    pub(in crate::app) hosts: BTreeMap<String, u32>,
    /// Per Deployment name, its live pods.
    pub(in crate::app) pods: BTreeMap<String, Vec<WorkerPod>>,
}

impl BusyPods {
    /// Busy pods over every Deployment of the target.
    pub(in crate::app) fn total(&self) -> u32 {
        self.pods.values().map(|p| pods::busy_pods(p, &self.hosts)).fold(0, u32::saturating_add)
    }

    /// Busy pods of one Deployment.
    fn of(&self, deployment: &str) -> u32 {
        self.pods.get(deployment).map_or(0, |p| pods::busy_pods(p, &self.hosts))
    }

    /// The deletion costs of one Deployment's pods that must change.
    fn cost_changes(&self, deployment: &str) -> Vec<CostPatch> {
        let changes = self.pods.get(deployment).map_or_else(Vec::new, |p| pods::cost_changes(p, &self.hosts));
        changes.into_iter().map(|(pod, cost)| CostPatch { pod, cost }).collect()
    }
}

impl Busy {
    /// The busy pods, when learned.
    pub(super) fn total(&self) -> Option<u32> {
        match self {
            Busy::Known(pods) => Some(pods.total()),
            Busy::NotAsked | Busy::Unknown => None,
        }
    }
}

/// Whether the busy pods must be learned before this plan can be applied: a protected target
/// whose writes lower a Deployment — a metric-driven scale-down, but also a lowered
/// `max_replicas` or a move from spot to on-demand (issue #13) — and they are not known yet.
pub(super) fn needs_learning(spec: &Target, busy: &Busy, writes: &[ScaleWrite]) -> bool {
    spec.busy.is_some() && matches!(busy, Busy::NotAsked) && writes.iter().any(|w| w.to < w.from)
}

/// Whether the busy floor may hold a Deployment above its share: not when an operator's bound
/// (`max_replicas`, `paused-replicas`) set the number; then only the deletion costs protect the
/// busy pods.
pub(super) fn floor_applies(decision: &Decision) -> bool {
    !matches!(decision.reason, Reason::OutOfBounds { .. } | Reason::PausedReplicas { .. })
}

/// Keeps a metric-driven scale-down at or above the busy pods, or holds it while they are
/// unknown.
pub(super) fn limit_decision(spec: &Target, busy: &Busy, base: u32, decision: &mut Decision) {
    let Some(config) = &spec.busy else { return };
    match busy {
        Busy::Known(pods) if config.floor => decision.protect_busy(base, pods.total()),
        Busy::Unknown => decision.hold_busy_unknown(base),
        Busy::Known(_) | Busy::NotAsked => {}
    }
}

/// The replicas to write to one Deployment: a scale-down never goes below its busy pods, and
/// none happens while they are unknown (unless a bound set the number). `None`: leave it as it is.
pub(super) fn guard(
    spec: &Target,
    busy: &Busy,
    decision: &Decision,
    deployment: &str,
    current: u32,
    to: u32,
) -> Option<u32> {
    let floor = spec.busy.as_ref().is_some_and(|b| b.floor) && floor_applies(decision);
    match busy {
        _ if to >= current => Some(to),
        Busy::NotAsked => Some(to),
        Busy::Unknown if floor_applies(decision) => None,
        Busy::Known(pods) if floor => Some(to.max(pods.of(deployment).min(current))),
        Busy::Unknown | Busy::Known(_) => Some(to),
    }
}

/// The deletion costs to set before the writes that lower a Deployment.
pub(super) fn costs(busy: &Busy, writes: &[ScaleWrite]) -> Vec<CostPatch> {
    let Busy::Known(pods) = busy else { return Vec::new() };
    writes.iter().filter(|w| w.to < w.from).flat_map(|w| pods.cost_changes(&w.deployment)).collect()
}
