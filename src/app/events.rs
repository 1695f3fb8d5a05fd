//! One typed event per outcome of the loop (after vector's `internal_events`): each struct emits
//! its log line and its metric together, from one place.

use std::time::Duration;

use super::observe::BusyError;
use super::plan::{Plan, ScaleWrite};
use crate::config::Target;
use crate::k8s::KubeError;
use crate::metrics::{Metrics, TargetLabels};
use crate::source::{Kind, Reading, SourceError};

/// An outcome that records its metric and its log line.
pub(super) trait InternalEvent {
    fn emit(self, metrics: &Metrics);
}

/// A source was polled (successfully or not).
pub(super) struct SourcePolled<'a> {
    pub(super) source: &'a str,
    pub(super) kind: Kind,
    pub(super) result: &'a Result<Reading, SourceError>,
    pub(super) took: Duration,
    pub(super) partitions: bool,
}

impl InternalEvent for SourcePolled<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.source_polled(self.source, self.kind, self.result, self.took, self.partitions);
        if let Err(error) = self.result {
            tracing::warn!(source = %self.source, kind = self.kind.as_str(), %error, "poll failed");
        }
    }
}

/// The target's Deployment could not be read: its state is unknown this cycle.
pub(super) struct DeploymentUnreadable<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) spec: &'a Target,
    pub(super) error: &'a KubeError,
}

impl InternalEvent for DeploymentUnreadable<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.target_failed(self.target, self.error.label());
        let (name, namespace) = (&self.spec.name, &self.spec.namespace);
        tracing::warn!(target = %name, %namespace, error = %self.error, "cannot read the Deployment");
    }
}

/// A plan was made: the decision and the placement, logged at info level when its outcome
/// changed (`changed`), else at debug.
pub(super) struct Decided<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) name: &'a str,
    pub(super) plan: &'a Plan,
    pub(super) changed: bool,
    pub(super) spot: bool,
}

impl InternalEvent for Decided<'_> {
    fn emit(self, metrics: &Metrics) {
        let plan = self.plan;
        let current = plan.current.map(|c| c.total());
        metrics.decided(self.target, current, &plan.decision);
        metrics.placed(self.target, plan.placement.split, plan.current, self.spot.then_some(plan.placement));
        let (name, desired, reason) = (self.name, plan.decision.replicas, &plan.note);
        if self.changed {
            tracing::info!(target = %name, ?current, desired, %reason, "decision");
        } else {
            tracing::debug!(target = %name, ?current, desired, %reason, "decision");
        }
    }
}

/// The busy worker pods were learned before a scale-down.
pub(super) struct BusyLearned<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) busy: u32,
}

impl InternalEvent for BusyLearned<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.busy_pods(self.target, self.busy);
    }
}

/// The busy worker pods could not be learned: nothing goes down this cycle.
pub(super) struct BusyUnknown<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) name: &'a str,
    pub(super) error: &'a BusyError,
}

impl InternalEvent for BusyUnknown<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.target_failed(self.target, self.error.label());
        tracing::warn!(target = %self.name, error = %self.error, "cannot learn the busy workers: no scale-down this cycle");
    }
}

/// A workload was rescaled.
pub(super) struct Rescaled<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) spec: &'a Target,
    pub(super) write: &'a ScaleWrite,
    pub(super) note: &'a str,
}

impl InternalEvent for Rescaled<'_> {
    fn emit(self, metrics: &Metrics) {
        let ScaleWrite { workload, from, to, observed } = self.write;
        metrics.rescaled(self.target, *from, *to);
        let (name, namespace, kind) = (&self.spec.name, &self.spec.namespace, observed.kind.as_str());
        tracing::info!(target = %name, %namespace, kind, %workload, from, to, reason = %self.note, "rescaled");
    }
}

/// A scale write failed; the next cycle reads and plans again.
pub(super) struct ScaleWriteFailed<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) spec: &'a Target,
    pub(super) write: &'a ScaleWrite,
    pub(super) error: &'a KubeError,
}

impl InternalEvent for ScaleWriteFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.target_failed(self.target, self.error.label());
        let (name, namespace, workload, to) =
            (&self.spec.name, &self.spec.namespace, &self.write.workload, self.write.to);
        let kind = self.write.observed.kind.as_str();
        tracing::warn!(target = %name, %namespace, kind, %workload, to, error = %self.error, "scale write failed");
    }
}

/// A write conflicted with another writer's change: the target is read and planned again.
pub(super) struct Replanned<'a> {
    pub(super) name: &'a str,
    pub(super) attempt: usize,
}

impl InternalEvent for Replanned<'_> {
    fn emit(self, _metrics: &Metrics) {
        let (name, attempt) = (self.name, self.attempt);
        tracing::info!(target = %name, attempt, "write conflict: reading and planning again");
    }
}

/// A pod's deletion cost could not be set: the plan's scale-downs wait for the next cycle.
pub(super) struct CostNotSet<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) name: &'a str,
    pub(super) pod: &'a str,
    pub(super) error: &'a KubeError,
}

impl InternalEvent for CostNotSet<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.target_failed(self.target, self.error.label());
        tracing::warn!(target = %self.name, pod = %self.pod, error = %self.error, "could not set the pod deletion cost");
    }
}

/// A scale-down not sent because a deletion cost it relies on could not be set.
pub(super) struct ScaleDownHeld<'a> {
    pub(super) name: &'a str,
    pub(super) write: &'a ScaleWrite,
}

impl InternalEvent for ScaleDownHeld<'_> {
    fn emit(self, _metrics: &Metrics) {
        let (name, workload, from, to) = (self.name, &self.write.workload, self.write.from, self.write.to);
        let kind = self.write.observed.kind.as_str();
        tracing::warn!(target = %name, kind, %workload, from, to, "scale-down held: a pod's deletion cost is not set; the next cycle tries again");
    }
}

/// An Event could not be recorded on the Deployment.
pub(super) struct EventNotRecorded<'a> {
    pub(super) target: &'a TargetLabels,
    pub(super) name: &'a str,
    pub(super) error: &'a KubeError,
}

impl InternalEvent for EventNotRecorded<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.target_failed(self.target, self.error.label());
        tracing::warn!(target = %self.name, error = %self.error, "could not record the Event");
    }
}

/// A write was skipped: this replica does not (or no longer) hold the lease.
pub(super) struct Standby<'a> {
    pub(super) name: &'a str,
    pub(super) holder: Option<String>,
}

impl InternalEvent for Standby<'_> {
    fn emit(self, _metrics: &Metrics) {
        tracing::debug!(target = %self.name, holder = ?self.holder, "standby: not writing");
    }
}

/// A spot watch failed; kube-runtime's watcher resumes it (lists again after a 410).
pub(super) struct WatchFailed<'a> {
    pub(super) watch: &'static str,
    pub(super) label: &'static str,
    pub(super) error: &'a kube::runtime::watcher::Error,
}

impl InternalEvent for WatchFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.watch_failed(self.watch, self.label);
        tracing::warn!(watch = self.watch, error = %self.error, "watch failed; resuming");
    }
}
