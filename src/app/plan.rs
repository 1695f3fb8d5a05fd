//! One target's cycle as data. What was read and polled goes in; a [`Plan`] comes out: the
//! decision, where the replicas go, the scale writes, the pod-cost patches, the Events and the
//! note. Nothing here does I/O or reads a clock: `apply` performs a plan, and a plan made again
//! from the same [`Memory`] after a conflict is exactly the plan of a first try.
//!
//! ```text
//! Memory ─┐                     ┌─► decision (policy::decide)
//! Cluster ├─► plan ─► Plan ─────┼─► placement (policy::spot::place)
//! Busy    │                     ├─► writes {workload, from, to} + their Events
//! readings┘                     └─► costs, spot Events, note, next Memory
//! ```

mod busy;

pub(super) use busy::{Busy, BusyPods, floor_applies};

use std::time::Duration;

use crate::config::Target;
use crate::k8s::spot::SpotHealth;
use crate::k8s::{EventType, Observed};
use crate::policy::spot::{self, Placement, Split, SpotChange, SpotHistory};
use crate::policy::{self, Decision, History, Inputs, Observation, Reason};

/// What a target remembers from one cycle to the next: the policy's history, the spot
/// placement's, and what the last plan taken into use assumed.
#[derive(Debug, Clone, Default)]
pub(super) struct Memory {
    pub(super) history: History,
    pub(super) spot: SpotHistory,
    /// Extra on-demand replicas in the last placement written (or assumed), so that the policy
    /// sees the total it decided rather than the total plus the stand-ins.
    pub(super) applied_extra: u32,
    /// Without a cluster (a dry run), the replicas as if every decision had been applied.
    pub(super) assumed: u32,
}

impl Memory {
    pub(super) fn new(min_replicas: u32) -> Self {
        Memory { assumed: min_replicas, ..Memory::default() }
    }
}

/// What this cycle's read of the target's workloads found.
#[derive(Debug, Clone)]
pub(super) enum Cluster {
    /// No cluster at all (a dry run without one): the assumed replicas stand in.
    Absent,
    /// The read failed: the state is unknown.
    Unreadable,
    Read(Seen),
}

/// The workload, and its spot twin Deployment when the target has one.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) main: Observed,
    pub(super) twin: Option<Observed>,
}

impl Seen {
    pub(super) fn split(&self) -> Split {
        Split { on_demand: self.main.replicas, spot: self.twin.as_ref().map_or(0, |t| t.replicas) }
    }

    /// Ready replicas over both workloads, where the status says.
    fn ready(&self) -> Option<u32> {
        let twin = self.twin.as_ref().map_or(Some(0), |t| t.ready);
        Some(self.main.ready? + twin?)
    }
}

/// Everything one plan is made from.
pub(super) struct Facts<'a> {
    pub(super) spec: &'a Target,
    pub(super) memory: &'a Memory,
    pub(super) cluster: &'a Cluster,
    /// One per trigger, in the order of the target's triggers.
    pub(super) observations: &'a [Observation],
    /// Spot health from the watches (`None`: no twin, or not known yet).
    pub(super) spot_health: Option<SpotHealth>,
    pub(super) busy: &'a Busy,
    /// The policy's clock.
    pub(super) now: Duration,
}

/// A write of one workload's replicas, and the Event that records it once written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScaleWrite {
    /// The workload's name; its kind is the one read (`observed.kind`).
    pub(super) workload: String,
    pub(super) from: u32,
    pub(super) to: u32,
    /// The workload as read: its version is the write's precondition.
    pub(super) observed: Observed,
}

/// An Event to record on a workload.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EventRecord {
    pub(super) workload: String,
    pub(super) observed: Observed,
    pub(super) type_: EventType,
    pub(super) reason: &'static str,
    pub(super) note: String,
}

/// A pod's deletion cost to set before a scale-down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CostPatch {
    pub(super) pod: String,
    pub(super) cost: i32,
}

/// What one cycle decided for one target, ready to be applied.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) decision: Decision,
    pub(super) placement: Placement,
    /// The replicas as read (`None`: not read).
    pub(super) current: Option<Split>,
    /// The total the policy started from: current without the stand-ins, or the assumed total.
    pub(super) base: u32,
    pub(super) writes: Vec<ScaleWrite>,
    /// Deletion costs to set before the writes, in the order given.
    pub(super) costs: Vec<CostPatch>,
    /// Events beyond the rescales' own (a move to or from spot).
    pub(super) events: Vec<EventRecord>,
    /// The reason, with where the replicas go.
    pub(super) note: String,
    pub(super) spot_health: Option<SpotHealth>,
    /// Busy worker pods, when they were learned for this plan.
    pub(super) busy_pods: Option<u32>,
    /// A scale-down that busy-aware scale-in must check: learn the busy pods and plan again.
    pub(super) needs_busy: bool,
    /// The memory once this plan is taken into use (before any rescale is recorded).
    pub(super) memory: Memory,
}

/// Plans one target's cycle.
pub(super) fn plan(facts: &Facts) -> Plan {
    let mut memory = facts.memory.clone();
    let seen = match facts.cluster {
        Cluster::Read(seen) => Some(seen),
        Cluster::Absent | Cluster::Unreadable => None,
    };
    let current = seen.map(Seen::split);
    // The policy decides totals; stand-ins for failing spot replicas are not part of them.
    let base = current.map_or(memory.assumed, |c| c.total().saturating_sub(memory.applied_extra));
    let inputs = Inputs {
        current: base,
        ready: seen.and_then(Seen::ready),
        observations: facts.observations,
        pause: seen.map(|s| s.main.pause).unwrap_or_default(),
        now: facts.now,
    };
    let mut decision = policy::decide(&facts.spec.policy, &mut memory.history, &inputs);
    busy::limit_decision(facts.spec, facts.busy, base, &mut decision);
    let placement = place(facts, &mut memory.spot, decision.replicas);
    let note = note(facts.spec, &decision, &placement, facts.spot_health);
    let mut plan = Plan {
        decision,
        placement,
        current,
        base,
        writes: Vec::new(),
        costs: Vec::new(),
        events: Vec::new(),
        note,
        spot_health: facts.spot_health,
        busy_pods: facts.busy.total(),
        needs_busy: false,
        memory,
    };
    if matches!(facts.cluster, Cluster::Unreadable) {
        // Unknown state: nothing is written, and the cycle leaves no trace in the memory, so
        // that the policy's start-up hold is seeded from the first real read, never from
        // `min_replicas` (issue #13).
        plan.memory = facts.memory.clone();
    }
    if let (Some(seen), false) = (seen, plan.decision.reason == Reason::Paused) {
        plan.writes = writes(facts, seen, &plan.decision, &plan.placement);
        plan.needs_busy = busy::needs_learning(facts.spec, facts.busy, &plan.writes);
        plan.costs = busy::costs(facts.busy, &plan.writes);
        plan.events = spot_event(facts.spec, seen, &plan.placement, &plan.note).into_iter().collect();
    }
    plan
}

impl Plan {
    /// The Event that records a write: like the HPA's, "New size: N; reason: …".
    pub(super) fn rescale_event(&self, write: &ScaleWrite) -> EventRecord {
        EventRecord {
            workload: write.workload.clone(),
            observed: write.observed.clone(),
            type_: EventType::Normal,
            reason: "SuccessfulRescale",
            note: format!("New size: {}; reason: {}", write.to, self.note),
        }
    }
}

/// Splits the decided total over on-demand and spot (all on-demand without a spot twin).
fn place(facts: &Facts, history: &mut SpotHistory, total: u32) -> Placement {
    let Some(spot) = &facts.spec.spot else {
        let split = Split { on_demand: total, spot: 0 };
        return Placement { split, extra: 0, shortfall: 0, change: None };
    };
    let shortfall = facts.spot_health.map_or(0, |h| h.shortfall());
    spot::place(&spot.policy, facts.spec.policy.max_replicas, total, shortfall, history, facts.now)
}

/// Each workload whose replicas differ from its share (after the busy floor).
fn writes(facts: &Facts, seen: &Seen, decision: &Decision, placement: &Placement) -> Vec<ScaleWrite> {
    let spec = facts.spec;
    let twin = spec.spot.as_ref().zip(seen.twin.as_ref());
    let shares = [(spec.workload.as_str(), &seen.main, placement.split.on_demand)]
        .into_iter()
        .chain(twin.map(|(spot, observed)| (spot.deployment.as_str(), observed, placement.split.spot)));
    shares
        .filter_map(|(name, observed, to)| {
            let to = busy::guard(spec, facts.busy, decision, (name, observed), to)?;
            (to != observed.replicas).then(|| ScaleWrite {
                workload: name.to_owned(),
                from: observed.replicas,
                to,
                observed: observed.clone(),
            })
        })
        .collect()
}

/// The Event of a move between capacity types, on the on-demand Deployment.
fn spot_event(spec: &Target, seen: &Seen, placement: &Placement, note: &str) -> Option<EventRecord> {
    let (type_, reason) = match placement.change? {
        SpotChange::Fallback { .. } => (EventType::Warning, "SpotFallback"),
        SpotChange::ShiftBack { .. } => (EventType::Normal, "SpotRecovered"),
    };
    Some(EventRecord {
        workload: spec.workload.clone(),
        observed: seen.main.clone(),
        type_,
        reason,
        note: note.to_owned(),
    })
}

/// The decision's reason, with where the replicas go when there is a spot twin.
fn note(spec: &Target, decision: &Decision, placement: &Placement, health: Option<SpotHealth>) -> String {
    let mut note = decision.reason.to_string();
    if spec.spot.is_none() {
        return note;
    }
    let Split { on_demand, spot } = placement.split;
    note.push_str(&format!("; split {on_demand} on-demand + {spot} spot"));
    match (placement.change, health) {
        (Some(change), _) => note.push_str(&format!("; {change}")),
        (None, _) if placement.fallback_active() => {
            note.push_str(&format!("; {} on-demand standing in for spot", placement.extra));
        }
        (None, None) => note.push_str("; spot health unknown (no watch yet)"),
        (None, Some(_)) => {}
    }
    note
}

#[cfg(test)]
mod tests;
