//! Performs a plan, only while this replica leads: the pod costs, then each scale write with the
//! version read as its precondition, then the Events. Each outcome is one internal event, which
//! records its log line and its metric together.

use super::events::{CostNotSet, EventNotRecorded, InternalEvent, Rescaled, ScaleDownHeld, ScaleWriteFailed, Standby};
use super::plan::{EventRecord, Plan, ScaleWrite, floor_applies};
use super::target::TargetState;
use crate::k8s::lease::Leadership;
use crate::k8s::{Kube, KubeError};
use crate::metrics::Metrics;

/// What writes go through.
pub(super) struct Writer<'a> {
    pub(super) kube: Option<&'a Kube>,
    /// Whether this replica may write, checked right before every write.
    pub(super) leadership: &'a Leadership,
    pub(super) dry_run: bool,
    pub(super) metrics: &'a Metrics,
}

/// What applying a plan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Applied {
    /// Scale writes that took effect.
    pub(super) writes: usize,
    /// A write met a 409: the Deployment changed since it was read, and the rest of the plan
    /// was not applied. The caller reads and plans again.
    pub(super) conflict: bool,
}

/// What one scale write did.
enum Outcome {
    Written,
    /// Not written: not the leader, or it failed (the next cycle tries again).
    Skipped,
    Conflict,
}

impl Writer<'_> {
    /// Performs `plan` for `target`.
    pub(super) async fn apply(&self, target: &TargetState, plan: &Plan) -> Applied {
        let mut applied = Applied::default();
        let Some(kube) = self.kube.filter(|_| !self.dry_run) else { return applied };
        let mut costs_set = true;
        for cost in &plan.costs {
            if !self.may_write(target) {
                return applied;
            }
            if let Err(error) = kube.set_deletion_cost(&target.spec.namespace, &cost.pod, cost.cost).await {
                CostNotSet { target: &target.labels, name: &target.spec.name, pod: &cost.pod, error: &error }
                    .emit(self.metrics);
                costs_set = false;
            }
        }
        // Without the costs the ReplicaSet may pick a busy pod: the scale-downs wait for the next
        // cycle, which sets them again (issue #13). An operator's bound still wins, as over the
        // busy floor.
        let set_by_operator = !floor_applies(&plan.decision);
        for write in &plan.writes {
            if !costs_set && write.to < write.from && !set_by_operator {
                ScaleDownHeld { name: &target.spec.name, write }.emit(self.metrics);
                continue;
            }
            match self.write(kube, target, plan, write).await {
                Outcome::Written => applied.writes += 1,
                Outcome::Skipped => {}
                Outcome::Conflict => {
                    applied.conflict = true;
                    return applied;
                }
            }
        }
        for event in plan.events.iter().filter(|_| self.may_write(target)) {
            self.record(kube, target, event).await;
        }
        applied
    }

    /// One scale write, with the version read as its precondition: it lands only on the
    /// Deployment the plan was made from.
    async fn write(&self, kube: &Kube, target: &TargetState, plan: &Plan, write: &ScaleWrite) -> Outcome {
        if !self.may_write(target) {
            return Outcome::Skipped;
        }
        let namespace = &target.spec.namespace;
        match kube.scale(namespace, &write.workload, &write.observed, write.to).await {
            Ok(()) => {
                Rescaled { target: &target.labels, spec: &target.spec, write, note: &plan.note }.emit(self.metrics);
                self.record(kube, target, &plan.rescale_event(write)).await;
                Outcome::Written
            }
            Err(error) => {
                ScaleWriteFailed { target: &target.labels, spec: &target.spec, write, error: &error }
                    .emit(self.metrics);
                if error == KubeError::Conflict { Outcome::Conflict } else { Outcome::Skipped }
            }
        }
    }

    async fn record(&self, kube: &Kube, target: &TargetState, event: &EventRecord) {
        let recorded = kube
            .record(&target.spec.namespace, &event.workload, &event.observed, event.type_, event.reason, &event.note)
            .await;
        if let Err(error) = recorded {
            EventNotRecorded { target: &target.labels, name: &target.spec.name, error: &error }.emit(self.metrics);
        }
    }

    /// The leader check, right before a write: a replica that is not (or no longer) the leader
    /// never writes.
    fn may_write(&self, target: &TargetState) -> bool {
        let leader = self.leadership.is_leader();
        if !leader {
            Standby { name: &target.spec.name, holder: self.leadership.holder() }.emit(self.metrics);
        }
        leader
    }
}
