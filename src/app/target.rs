//! One target between cycles, and its cycle: read → plan (again with the busy pods, before a
//! scale-down that must check them) → apply → take the plan into memory → report.

use std::time::Duration;

use tokio::time::Instant;

use super::TargetReport;
use super::apply::Writer;
use super::cycle::Readings;
use super::events::{Decided, InternalEvent, Replanned};
use super::observe::Reader;
use super::plan::{self, Busy, Cluster, Facts, Memory, Plan};
use crate::config::Target;
use crate::k8s::spot::PodWatch;
use crate::metrics::{Metrics, TargetLabels};
use crate::policy::Observation;

/// Plans per cycle at most: the first, and one again after each of two write conflicts.
const REPLANS: usize = 3;

/// One target between cycles.
pub(super) struct TargetState {
    pub(super) spec: Target,
    pub(super) labels: TargetLabels,
    memory: Memory,
    pub(super) next_due: Instant,
    /// The last (replicas, reason label) logged at info level, to log changes only.
    last_logged: Option<(u32, &'static str)>,
    /// The watch on the spot twin's pods (started at the first read of the twin).
    pub(super) spot_pods: Option<PodWatch>,
}

impl TargetState {
    pub(super) fn new(spec: &Target, metrics: &Metrics, started: Instant) -> Self {
        let labels = TargetLabels::new(&spec.name, &spec.namespace, &spec.workload);
        metrics.register_target(&labels, spec.spot.is_some(), spec.busy.is_some(), spec.policy.objective.is_some());
        TargetState {
            spec: spec.clone(),
            labels,
            memory: Memory::new(spec.policy.min_replicas),
            next_due: started,
            last_logged: None,
            spot_pods: None,
        }
    }

    /// Takes a reloaded spec, keeping the history (and the spot placement's, if its spec is the
    /// same).
    pub(super) fn reconfigure(&mut self, spec: &Target, metrics: &Metrics) {
        if self.spec.spot != spec.spot || self.spec.namespace != spec.namespace {
            self.memory.spot = Default::default();
            self.memory.applied_extra = 0;
            // Dropping the watch stops it (a removed target drops its own with it).
            self.spot_pods = None;
        }
        let (was, is) = (&self.spec, spec);
        if (&was.namespace, was.kind, &was.workload) != (&is.namespace, is.kind, &is.workload) {
            metrics.retire_target(&self.labels);
            self.labels = TargetLabels::new(&spec.name, &spec.namespace, &spec.workload);
            self.memory.history = Default::default();
        }
        metrics.register_target(
            &self.labels,
            spec.spot.is_some(),
            spec.busy.is_some(),
            spec.policy.objective.is_some(),
        );
        self.spec = spec.clone();
    }

    /// One cycle of this target, at `now` on the policy's clock. A write that meets a 409 means
    /// someone else changed the Deployment: read it again and plan again from the memory as it
    /// was before this cycle (pause annotations, rate limits, the busy floor and leadership all
    /// apply to what is there now); the number planned from the old read is never written.
    pub(super) async fn run(
        &mut self,
        readings: &Readings,
        reader: &Reader<'_>,
        writer: &Writer<'_>,
        now: Duration,
    ) -> TargetReport {
        let observations = observations(&self.spec, readings);
        let mut written = 0;
        let mut first_base = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (cluster, kube_error) = reader.cluster(self).await;
            let spot_health = reader.spot_health(self, &cluster).await;
            let mut plan = self.plan(&cluster, &observations, spot_health, &Busy::NotAsked, now);
            if plan.needs_busy {
                let busy = reader.busy(self, &cluster).await;
                plan = self.plan(&cluster, &observations, spot_health, &busy, now);
            }
            // Recorded before the writes, so that whoever sees a write also sees its decision's
            // metrics; a plan made again after a conflict counts as a decision of its own.
            self.log(&plan, writer.metrics);
            let applied = writer.apply(self, &plan).await;
            written += applied.writes;
            let base = *first_base.get_or_insert(plan.base);
            if applied.conflict && attempt < REPLANS {
                Replanned { name: &self.spec.name, attempt }.emit(writer.metrics);
                continue;
            }
            let report =
                TargetReport::new(&self.spec, &plan, readings, reader.sources, written > 0, kube_error.as_ref());
            self.take(plan, base, written > 0, writer.dry_run && matches!(cluster, Cluster::Absent), now);
            return report;
        }
    }

    /// Plans from the memory as it was before this cycle, so that planning again is exact.
    fn plan(
        &self,
        cluster: &Cluster,
        observations: &[Observation],
        spot_health: Option<crate::k8s::spot::SpotHealth>,
        busy: &Busy,
        now: Duration,
    ) -> Plan {
        let facts = Facts { spec: &self.spec, memory: &self.memory, cluster, observations, spot_health, busy, now };
        plan::plan(&facts)
    }

    /// Takes the plan into memory: its history, and the rescale from `base` (the total before
    /// this cycle's first write) if one was applied (or, without a cluster, assumed).
    fn take(&mut self, plan: Plan, base: u32, written: bool, assumed: bool, now: Duration) {
        self.memory = plan.memory;
        if assumed {
            self.memory.assumed = plan.decision.replicas;
        }
        if written || assumed {
            if plan.decision.replicas != base {
                self.memory.history.record_rescale(&self.spec.policy, base, plan.decision.replicas, now);
            }
            self.memory.applied_extra = plan.placement.extra;
        }
    }

    /// Records the decision; logs it at info level when it writes or its outcome changed, else at
    /// debug.
    fn log(&mut self, plan: &Plan, metrics: &Metrics) {
        let key = (plan.decision.replicas, plan.decision.reason.label());
        let changed = !plan.writes.is_empty() || self.last_logged != Some(key);
        self.last_logged = Some(key);
        Decided { target: &self.labels, name: &self.spec.name, plan, changed, spot: self.spec.spot.is_some() }
            .emit(metrics);
    }
}

/// One observation per trigger: the reading of its source, or a failure.
fn observations(spec: &Target, readings: &Readings) -> Vec<Observation> {
    let reading = |source: &str| readings.get(source);
    spec.policy
        .triggers
        .iter()
        .map(|t| match reading(&t.source) {
            Some(Ok(reading)) => reading.observation(),
            _ => Observation::Failed,
        })
        .collect()
}

/// How long a target waits between cycles.
pub(super) fn next_due(previous: Instant, interval: Duration, now: Instant) -> Instant {
    let next = previous + interval;
    if next <= now { now + interval } else { next }
}
