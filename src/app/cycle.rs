//! One cycle: poll each needed source once, then decide and apply every due target.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::{App, TargetReport, TargetState};
use crate::metrics::Metrics;
use crate::policy::{self, Decision, Inputs, Observation};
use crate::source::{Reading, Source, SourceError};
use crate::target::{Deployments, Observed, TargetError};

/// The outcome of this cycle's poll of each source.
pub(super) type Readings = BTreeMap<String, Result<Reading, SourceError>>;

impl App {
    /// Runs the targets that are due (or all of them), and reports on each.
    pub(super) async fn cycle(&mut self, all: bool) -> Vec<TargetReport> {
        let now = Instant::now();
        let due = |t: &TargetState| all || t.next_due <= now;
        let needed: BTreeSet<&str> = self
            .targets
            .iter()
            .filter(|t| due(t))
            .flat_map(|t| t.spec.policy.triggers.iter().map(|tr| tr.source.as_str()))
            .collect();
        let readings = poll(&self.sources, needed, &self.metrics).await;
        let clock = now - self.started;
        let context = Context {
            readings: &readings,
            sources: &self.sources,
            kube: self.kube.as_ref(),
            dry_run: self.dry_run,
            metrics: &self.metrics,
            now: clock,
        };
        let runs = self.targets.iter_mut().filter(|t| due(t)).map(|t| t.run(&context));
        let reports = join_all(runs).await;
        for target in self.targets.iter_mut().filter(|t| due(t)) {
            target.next_due += target.spec.interval;
            if target.next_due <= now {
                target.next_due = now + target.spec.interval;
            }
        }
        self.metrics.loop_finished(now.elapsed());
        reports
    }
}

/// Polls each source once, concurrently.
async fn poll(sources: &BTreeMap<String, Source>, needed: BTreeSet<&str>, metrics: &Metrics) -> Readings {
    let polls = needed.into_iter().filter_map(|name| sources.get_key_value(name)).map(|(name, source)| async move {
        let started = Instant::now();
        let result = source.poll().await;
        metrics.source_polled(name, source.kind(), &result, started.elapsed());
        if let Err(error) = &result {
            tracing::warn!(source = %name, kind = source.kind().as_str(), error = %error, "poll failed");
        }
        (name.clone(), result)
    });
    join_all(polls).await.into_iter().collect()
}

/// What every target of a cycle shares.
pub(super) struct Context<'a> {
    readings: &'a Readings,
    sources: &'a BTreeMap<String, Source>,
    kube: Option<&'a Deployments>,
    dry_run: bool,
    metrics: &'a Metrics,
    /// The policy's clock: time since the daemon started.
    now: Duration,
}

impl TargetState {
    async fn run(&mut self, cx: &Context<'_>) -> TargetReport {
        let observed = self.observe(cx).await;
        let (current, kube_error) = match &observed {
            Some(Ok(seen)) => (Some(seen.replicas), None),
            Some(Err(error)) => (None, Some(error.clone())),
            None => (None, None),
        };
        let seen = observed.and_then(Result::ok);
        let observations: Vec<Observation> = self
            .spec
            .policy
            .triggers
            .iter()
            .map(|t| match cx.readings.get(&t.source) {
                Some(Ok(reading)) => Observation::Value(reading.value),
                _ => Observation::Failed,
            })
            .collect();
        let base = current.unwrap_or(self.assumed);
        let inputs = Inputs {
            current: base,
            observations: &observations,
            pause: seen.as_ref().map(|s| s.pause).unwrap_or_default(),
            now: cx.now,
        };
        let decision = policy::decide(&self.spec.policy, &mut self.history, &inputs);
        cx.metrics.decided(&self.labels, current, &decision);
        let written = self.apply(cx, seen.as_ref(), base, &decision).await;
        self.log(current, &decision, written);
        TargetReport::new(&self.spec, current, &decision, written, kube_error.as_ref(), cx.readings, cx.sources)
    }

    /// Reads the Deployment, if there is a cluster.
    async fn observe(&self, cx: &Context<'_>) -> Option<Result<Observed, TargetError>> {
        let kube = cx.kube?;
        let result = kube.observe(&self.spec.namespace, &self.spec.deployment).await;
        if let Err(error) = &result {
            cx.metrics.target_failed(&self.labels, error.label());
            tracing::warn!(target = %self.spec.name, namespace = %self.spec.namespace, deployment = %self.spec.deployment, %error, "cannot read the Deployment");
        }
        Some(result)
    }

    /// Writes the decision if it changes the Deployment. Returns whether a write happened.
    async fn apply(&mut self, cx: &Context<'_>, seen: Option<&Observed>, base: u32, decision: &Decision) -> bool {
        if !decision.should_write(base) {
            return false;
        }
        let to = decision.replicas;
        match (seen, cx.kube) {
            (Some(seen), Some(kube)) if !cx.dry_run => self.write(cx, kube, seen, decision).await,
            (None, _) if cx.dry_run => {
                // Nothing real to read back: carry on as if the write had been applied.
                self.history.record_rescale(&self.spec.policy, base, to, cx.now);
                self.assumed = to;
                false
            }
            _ => false,
        }
    }

    async fn write(&mut self, cx: &Context<'_>, kube: &Deployments, seen: &Observed, decision: &Decision) -> bool {
        let (namespace, name, to) = (&self.spec.namespace, &self.spec.deployment, decision.replicas);
        match kube.scale(namespace, name, seen, to).await {
            Ok(Some(from)) => {
                self.history.record_rescale(&self.spec.policy, from, to, cx.now);
                cx.metrics.rescaled(&self.labels, from, to);
                tracing::info!(target = %self.spec.name, %namespace, deployment = %name, from, to, reason = %decision.reason, "rescaled");
                if let Err(error) = kube.record_rescale(namespace, name, seen, to, &decision.reason.to_string()).await {
                    cx.metrics.target_failed(&self.labels, error.label());
                    tracing::warn!(target = %self.spec.name, %error, "could not record the Event");
                }
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

    /// Logs a decision at info level when its outcome changes, else at debug.
    fn log(&mut self, current: Option<u32>, decision: &Decision, written: bool) {
        let key = (decision.replicas, decision.reason.label());
        let (name, reason) = (&self.spec.name, &decision.reason);
        if written || self.last_logged != Some(key) {
            tracing::info!(target = %name, ?current, desired = decision.replicas, reason = %reason, "decision");
            self.last_logged = Some(key);
        } else {
            tracing::debug!(target = %name, ?current, desired = decision.replicas, reason = %reason, "decision");
        }
    }
}
