//! One target's cycle: read its Deployment(s) → decide the total → place it on on-demand and
//! spot → write what changed → report.

use std::time::Duration;

use kube::runtime::events::EventType;
use tokio::time::Instant;

use super::TargetReport;
use super::busy::{self, Busy};
use super::cycle::Context;
use super::report::SpotReport;
use super::spot::SpotState;
use crate::config::Target;
use crate::k8s::spot::SpotHealth;
use crate::k8s::{Kube, KubeError, Observed};
use crate::metrics::{Metrics, TargetLabels};
use crate::policy::spot::{Placement, Split, SpotChange};
use crate::policy::{self, Decision, History, Inputs, Observation, Reason};

/// One target between cycles.
pub(super) struct TargetState {
    pub(super) spec: Target,
    labels: TargetLabels,
    history: History,
    pub(super) next_due: Instant,
    /// Without a readable Deployment (dry-run without a cluster), the replicas as if every
    /// decision had been applied, starting from `min_replicas`.
    assumed: u32,
    /// The last (replicas, reason label) logged at info level, to log changes only.
    last_logged: Option<(u32, &'static str)>,
    spot: Option<SpotState>,
}

/// What this cycle decided for a target, ready to be written.
struct Plan {
    /// The total the policy started from (current, without spot stand-ins).
    base: u32,
    decision: Decision,
    placement: Placement,
    busy: Busy,
    /// The reason, with where the replicas go.
    note: String,
}

/// What a read of the target's Deployments found.
struct Seen {
    main: Observed,
    twin: Option<Observed>,
}

impl Seen {
    fn split(&self) -> Split {
        Split { on_demand: self.main.replicas, spot: self.twin.as_ref().map_or(0, |t| t.replicas) }
    }

    /// Ready replicas over both Deployments, where the status says.
    fn ready(&self) -> Option<u32> {
        let twin = self.twin.as_ref().map_or(Some(0), |t| t.ready);
        Some(self.main.ready? + twin?)
    }
}

impl TargetState {
    pub(super) fn new(spec: &Target, metrics: &Metrics, started: Instant) -> Self {
        let labels = TargetLabels::new(&spec.name, &spec.namespace, &spec.deployment);
        metrics.register_target(&labels, spec.spot.is_some(), spec.busy.is_some(), spec.policy.objective.is_some());
        TargetState {
            spec: spec.clone(),
            labels,
            history: History::new(),
            next_due: started,
            assumed: spec.policy.min_replicas,
            last_logged: None,
            spot: spec.spot.clone().map(SpotState::new),
        }
    }

    /// Takes a reloaded spec, keeping the history (and the spot state, if its spec is the same).
    pub(super) fn reconfigure(&mut self, spec: &Target, metrics: &Metrics) {
        if self.spec.spot != spec.spot {
            self.spot = spec.spot.clone().map(SpotState::new);
        }
        if self.spec.namespace != spec.namespace || self.spec.deployment != spec.deployment {
            self.labels = TargetLabels::new(&spec.name, &spec.namespace, &spec.deployment);
            self.history = History::new();
        }
        metrics.register_target(
            &self.labels,
            spec.spot.is_some(),
            spec.busy.is_some(),
            spec.policy.objective.is_some(),
        );
        self.spec = spec.clone();
    }

    pub(super) async fn run(&mut self, cx: &Context<'_>) -> TargetReport {
        let read = self.read(cx).await;
        let kube_error = read.as_ref().and_then(|r| r.as_ref().err()).cloned();
        let seen = read.and_then(Result::ok);
        let current = seen.as_ref().map(Seen::split);
        let applied_extra = self.spot.as_ref().map_or(0, |s| s.applied_extra);
        // The policy decides totals; stand-ins for failing spot replicas are not part of them.
        let base = current.map_or(self.assumed, |c| c.total().saturating_sub(applied_extra));
        let observations = self.observations(cx);
        let pause = seen.as_ref().map(|s| s.main.pause).unwrap_or_default();
        let ready = seen.as_ref().and_then(Seen::ready);
        let inputs = Inputs { current: base, ready, observations: &observations, pause, now: cx.now };
        let mut decision = policy::decide(&self.spec.policy, &mut self.history, &inputs);
        let busy = self.busy(cx, seen.as_ref(), base, current.map(|c| c.total()), &mut decision).await;
        let (placement, health) = self.place(cx, seen.as_ref(), decision.replicas).await;
        cx.metrics.decided(&self.labels, current.map(|c| c.total()), &decision);
        cx.metrics.placed(&self.labels, placement.split, current, self.spot.is_some().then_some(placement));
        let note = self.note(&decision, &placement, health);
        let plan = Plan { base, decision, placement, busy, note };
        let written = self.apply(cx, seen.as_ref(), &plan).await;
        self.log(current.map(|c| c.total()), &plan.decision, &plan.note, written);
        let spot = self.spot.as_ref().map(|_| SpotReport::new(&plan.placement, health));
        let busy_pods = match &plan.busy {
            Busy::Known(pods) => Some(pods.total()),
            Busy::NotAsked | Busy::Unknown => None,
        };
        let Plan { decision, placement, note, .. } = plan;
        TargetReport::new(
            &self.spec,
            current,
            &decision,
            &note,
            placement.split,
            spot,
            busy_pods,
            written,
            kube_error.as_ref(),
            cx,
        )
    }

    /// With `protect_busy_workers`, before a metric-driven scale-down: learns which pods run
    /// tasks and keeps the total at or above them (or holds it when that cannot be learned).
    async fn busy(
        &self,
        cx: &Context<'_>,
        seen: Option<&Seen>,
        base: u32,
        total: Option<u32>,
        decision: &mut Decision,
    ) -> Busy {
        let (Some(config), Some(seen), Some(kube), Some(total)) = (&self.spec.busy, seen, cx.kube, total) else {
            return Busy::NotAsked;
        };
        if decision.replicas >= total || !matches!(decision.reason, Reason::Metric { .. }) {
            return Busy::NotAsked;
        }
        let mut deployments = vec![(self.spec.deployment.as_str(), seen.main.selector.as_deref())];
        if let (Some(spot), Some(twin)) = (&self.spec.spot, &seen.twin) {
            deployments.push((spot.deployment.as_str(), twin.selector.as_deref()));
        }
        match busy::learn(cx, kube, &self.spec.namespace, config, &deployments).await {
            Ok(pods) => {
                cx.metrics.busy_pods(&self.labels, pods.total());
                if config.floor {
                    decision.protect_busy(base, pods.total());
                }
                Busy::Known(pods)
            }
            Err(error) => {
                cx.metrics.target_failed(&self.labels, error.label());
                tracing::warn!(target = %self.spec.name, %error, "cannot learn the busy workers: no scale-down this cycle");
                decision.hold_busy_unknown(base);
                Busy::Unknown
            }
        }
    }

    fn observations(&self, cx: &Context<'_>) -> Vec<Observation> {
        let reading = |source: &str| cx.readings.get(source);
        self.spec
            .policy
            .triggers
            .iter()
            .map(|t| match reading(&t.source) {
                Some(Ok(reading)) => reading.observation(),
                _ => Observation::Failed,
            })
            .collect()
    }

    /// Reads the Deployment (and its spot twin), if there is a cluster.
    async fn read(&self, cx: &Context<'_>) -> Option<Result<Seen, KubeError>> {
        let kube = cx.kube?;
        let result = self.read_both(kube).await;
        if let Err(error) = &result {
            cx.metrics.target_failed(&self.labels, error.label());
            tracing::warn!(target = %self.spec.name, namespace = %self.spec.namespace, %error, "cannot read the Deployment");
        }
        Some(result)
    }

    async fn read_both(&self, kube: &Kube) -> Result<Seen, KubeError> {
        let main = kube.observe(&self.spec.namespace, &self.spec.deployment).await?;
        let twin = match &self.spec.spot {
            Some(spot) => Some(kube.observe(&self.spec.namespace, &spot.deployment).await?),
            None => None,
        };
        Ok(Seen { main, twin })
    }

    /// Splits the decided total over on-demand and spot (all on-demand without a spot twin).
    async fn place(&mut self, cx: &Context<'_>, seen: Option<&Seen>, total: u32) -> (Placement, Option<SpotHealth>) {
        let Some(spot) = self.spot.as_mut() else {
            let split = Split { on_demand: total, spot: 0 };
            return (Placement { split, extra: 0, shortfall: 0, change: None }, None);
        };
        let twin = seen.and_then(|s| s.twin.as_ref());
        let health = spot.health(cx.spot_watcher, &self.spec.namespace, twin).await;
        (spot.place(self.spec.policy.max_replicas, total, health, cx.now), health)
    }

    /// The decision's reason, with where the replicas go when there is a spot twin.
    fn note(&self, decision: &Decision, placement: &Placement, health: Option<SpotHealth>) -> String {
        let mut note = decision.reason.to_string();
        if self.spot.is_none() {
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

    /// Writes what changed. Returns whether any Deployment was written.
    async fn apply(&mut self, cx: &Context<'_>, seen: Option<&Seen>, plan: &Plan) -> bool {
        let Plan { base, decision, placement, .. } = plan;
        if decision.reason == Reason::Paused {
            return false;
        }
        let wrote = match (seen, cx.kube) {
            (Some(seen), Some(kube)) if !cx.dry_run => self.write(cx, kube, seen, plan).await,
            (None, _) if cx.dry_run => {
                // Nothing real to read back: carry on as if the writes had been applied.
                self.assumed = decision.replicas;
                true
            }
            _ => return false,
        };
        if wrote {
            if decision.replicas != *base {
                self.history.record_rescale(&self.spec.policy, *base, decision.replicas, cx.now);
            }
            if let Some(spot) = self.spot.as_mut() {
                spot.applied_extra = placement.extra;
            }
        }
        wrote && !cx.dry_run
    }

    /// Writes each Deployment whose replicas differ from its share, then records Events.
    async fn write(&mut self, cx: &Context<'_>, kube: &Kube, seen: &Seen, plan: &Plan) -> bool {
        let Plan { placement, busy, note, .. } = plan;
        let twin = self.spec.spot.as_ref().zip(seen.twin.as_ref());
        let plan = [(self.spec.deployment.as_str(), &seen.main, placement.split.on_demand)]
            .into_iter()
            .chain(twin.map(|(spot, observed)| (spot.deployment.as_str(), observed, placement.split.spot)));
        let mut wrote = false;
        for (name, observed, to) in plan {
            let Some(to) = self.guard(name, observed.replicas, to, busy) else { continue };
            if to == observed.replicas {
                continue;
            }
            if let (true, Busy::Known(pods)) = (to < observed.replicas, busy) {
                self.mark_costs(cx, kube, &pods.cost_changes(name)).await;
            }
            wrote |= self.write_one(cx, kube, name, observed, to, note).await;
        }
        if let Some(change) = placement.change.filter(|_| self.may_write(cx)) {
            let (type_, reason) = match change {
                SpotChange::Fallback { .. } => (EventType::Warning, "SpotFallback"),
                SpotChange::ShiftBack { .. } => (EventType::Normal, "SpotRecovered"),
            };
            let recorded =
                kube.record(&self.spec.namespace, &self.spec.deployment, &seen.main, type_, reason, note).await;
            self.event_failed(cx, recorded);
        }
        wrote
    }

    /// The replicas to write to one Deployment: a scale-down never goes below its busy pods, and
    /// none happens while they are unknown. `None`: leave it as it is.
    fn guard(&self, deployment: &str, current: u32, to: u32, busy: &Busy) -> Option<u32> {
        let floor = self.spec.busy.as_ref().is_some_and(|b| b.floor);
        match busy {
            _ if to >= current => Some(to),
            Busy::NotAsked => Some(to),
            Busy::Unknown => None,
            Busy::Known(pods) if floor => Some(to.max(pods.of(deployment).min(current))),
            Busy::Known(_) => Some(to),
        }
    }

    /// Sets the deletion costs that must change, just before a scale-down: best effort, since a
    /// missing cost only loses the preference, never the floor.
    async fn mark_costs(&self, cx: &Context<'_>, kube: &Kube, changes: &[(String, i32)]) {
        for (pod, cost) in changes {
            if !self.may_write(cx) {
                return;
            }
            if let Err(error) = kube.set_deletion_cost(&self.spec.namespace, pod, *cost).await {
                cx.metrics.target_failed(&self.labels, error.label());
                tracing::warn!(target = %self.spec.name, %pod, %error, "could not set the pod deletion cost");
            }
        }
    }

    async fn write_one(&self, cx: &Context<'_>, kube: &Kube, name: &str, seen: &Observed, to: u32, note: &str) -> bool {
        let namespace = &self.spec.namespace;
        if !self.may_write(cx) {
            return false;
        }
        match kube.scale(namespace, name, seen, to).await {
            Ok(Some(from)) => {
                cx.metrics.rescaled(&self.labels, from, to);
                tracing::info!(target = %self.spec.name, %namespace, deployment = %name, from, to, reason = %note, "rescaled");
                let recorded = kube.record_rescale(namespace, name, seen, to, note).await;
                self.event_failed(cx, recorded);
                true
            }
            Ok(None) => false,
            Err(error) => {
                cx.metrics.target_failed(&self.labels, error.label());
                tracing::warn!(target = %self.spec.name, %namespace, deployment = %name, to, %error, "scale write failed");
                false
            }
        }
    }

    /// The leader check, right before a write: a replica that is not (or no longer) the leader
    /// never writes.
    fn may_write(&self, cx: &Context<'_>) -> bool {
        let leader = cx.leader.is_leader();
        if !leader {
            tracing::debug!(target = %self.spec.name, holder = ?cx.leader.holder(), "standby: not writing");
        }
        leader
    }

    fn event_failed(&self, cx: &Context<'_>, recorded: Result<(), KubeError>) {
        if let Err(error) = recorded {
            cx.metrics.target_failed(&self.labels, error.label());
            tracing::warn!(target = %self.spec.name, %error, "could not record the Event");
        }
    }

    /// Logs a decision at info level when its outcome changes, else at debug.
    fn log(&mut self, current: Option<u32>, decision: &Decision, note: &str, written: bool) {
        let key = (decision.replicas, decision.reason.label());
        let name = &self.spec.name;
        if written || self.last_logged != Some(key) {
            tracing::info!(target = %name, ?current, desired = decision.replicas, reason = %note, "decision");
            self.last_logged = Some(key);
        } else {
            tracing::debug!(target = %name, ?current, desired = decision.replicas, reason = %note, "decision");
        }
    }
}

/// How long a target waits between cycles.
pub(super) fn next_due(previous: Instant, interval: Duration, now: Instant) -> Instant {
    let next = previous + interval;
    if next <= now { now + interval } else { next }
}
