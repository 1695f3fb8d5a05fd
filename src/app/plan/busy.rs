//! Busy-aware scale-in, as data: which worker pods run tasks, the floor they set under a
//! scale-down, and the deletion costs that make the ReplicaSet remove idle pods first.
//!
//! The two kinds of workload remove pods differently. A Deployment's ReplicaSet removes the pods
//! with the lowest `pod-deletion-cost` first (kubernetes `pkg/controller/controller_utils.go`,
//! `ActivePodsWithRanks.Less`), so the floor is the number of busy pods and the costs pick
//! which go. A StatefulSet removes its highest ordinals first and reads no deletion cost
//! (kubernetes `pkg/controller/statefulset/stateful_set_control.go`, scale-down "in reverse
//! ordinal order"), so the floor is the highest busy ordinal + 1, and no cost is written.

use std::collections::BTreeMap;

use super::{CostPatch, ScaleWrite};
use crate::config::{Target, WorkloadKind};
use crate::k8s::Observed;
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

/// Running tasks per hostname, and the pods of each workload.
#[derive(Debug, Clone, Default)]
pub(in crate::app) struct BusyPods {
    pub(in crate::app) hosts: BTreeMap<String, u32>,
    /// Per workload name, its live pods.
    pub(in crate::app) pods: BTreeMap<String, Vec<WorkerPod>>,
}

impl BusyPods {
    /// Busy pods over every workload of the target.
    pub(in crate::app) fn total(&self) -> u32 {
        self.pods.values().map(|p| pods::busy_pods(p, &self.hosts)).fold(0, u32::saturating_add)
    }

    /// The fewest replicas of one workload that keep all its busy pods.
    fn floor(&self, workload: &str, kind: WorkloadKind) -> u32 {
        match kind {
            WorkloadKind::Deployment => self.pods.get(workload).map_or(0, |p| pods::busy_pods(p, &self.hosts)),
            WorkloadKind::StatefulSet => {
                self.highest_busy(workload).map_or(0, |(_, ordinal)| ordinal.saturating_add(1))
            }
        }
    }

    /// A StatefulSet's busy pod with the highest ordinal, and that ordinal.
    fn highest_busy(&self, statefulset: &str) -> Option<(&str, u32)> {
        let pods = self.pods.get(statefulset)?;
        let busy = pods.iter().filter(|p| pods::running_tasks(&p.name, &self.hosts) > 0);
        busy.filter_map(|p| Some((p.name.as_str(), pods::ordinal(statefulset, &p.name)?))).max_by_key(|(_, o)| *o)
    }

    /// The deletion costs of one Deployment's pods that must change (a StatefulSet reads none).
    fn cost_changes(&self, write: &ScaleWrite) -> Vec<CostPatch> {
        if write.observed.kind != WorkloadKind::Deployment {
            return Vec::new();
        }
        let pods = self.pods.get(&write.workload);
        let changes = pods.map_or_else(Vec::new, |p| pods::cost_changes(p, &self.hosts));
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
pub(in crate::app) fn floor_applies(decision: &Decision) -> bool {
    !matches!(decision.reason, Reason::OutOfBounds { .. } | Reason::PausedReplicas { .. })
}

/// Keeps a metric-driven scale-down at or above the busy pods (for a StatefulSet, above its
/// highest busy ordinal), or holds it while they are unknown.
pub(super) fn limit_decision(spec: &Target, busy: &Busy, base: u32, decision: &mut Decision) {
    let Some(config) = &spec.busy else { return };
    match busy {
        Busy::Known(pods) if config.floor && spec.kind == WorkloadKind::StatefulSet => {
            if let Some((pod, ordinal)) = pods.highest_busy(&spec.workload) {
                decision.protect_busy_ordinal(base, pod, ordinal);
            }
        }
        Busy::Known(pods) if config.floor => decision.protect_busy(base, pods.total()),
        Busy::Unknown => decision.hold_busy_unknown(base),
        Busy::Known(_) | Busy::NotAsked => {}
    }
}

/// The replicas to write to one workload: a scale-down never goes below its busy floor, and
/// none happens while the busy pods are unknown (unless a bound set the number). `None`: leave
/// it as it is.
pub(super) fn guard(spec: &Target, busy: &Busy, decision: &Decision, seen: (&str, &Observed), to: u32) -> Option<u32> {
    let (workload, observed) = seen;
    let current = observed.replicas;
    let floor = spec.busy.as_ref().is_some_and(|b| b.floor) && floor_applies(decision);
    match busy {
        _ if to >= current => Some(to),
        Busy::NotAsked => Some(to),
        Busy::Unknown if floor_applies(decision) => None,
        Busy::Known(pods) if floor => Some(to.max(pods.floor(workload, observed.kind).min(current))),
        Busy::Unknown | Busy::Known(_) => Some(to),
    }
}

/// The deletion costs to set before the writes that lower a Deployment.
pub(super) fn costs(busy: &Busy, writes: &[ScaleWrite]) -> Vec<CostPatch> {
    let Busy::Known(pods) = busy else { return Vec::new() };
    writes.iter().filter(|w| w.to < w.from).flat_map(|w| pods.cost_changes(w)).collect()
}
