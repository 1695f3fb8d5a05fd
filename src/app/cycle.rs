//! One cycle: poll each needed source once, then decide and apply every due target.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::target::{TargetState, next_due};
use super::{App, TargetReport};
use crate::k8s::Kube;
use crate::k8s::lease::Leadership;
use crate::k8s::spot::SpotWatcher;
use crate::metrics::Metrics;
use crate::source::{Reading, Source, SourceError};

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
            spot_watcher: self.spot_watcher.as_ref(),
            leader: &self.leadership,
            dry_run: self.dry_run,
            metrics: &self.metrics,
            now: clock,
        };
        let runs = self.targets.iter_mut().filter(|t| due(t)).map(|t| t.run(&context));
        let reports = join_all(runs).await;
        for target in self.targets.iter_mut().filter(|t| due(t)) {
            target.next_due = next_due(target.next_due, target.spec.interval, now);
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
        metrics.source_polled(name, source.kind(), &result, started.elapsed(), source.partition_metrics());
        if let Err(error) = &result {
            tracing::warn!(source = %name, kind = source.kind().as_str(), error = %error, "poll failed");
        }
        (name.clone(), result)
    });
    join_all(polls).await.into_iter().collect()
}

/// What every target of a cycle shares.
pub(super) struct Context<'a> {
    pub(super) readings: &'a Readings,
    pub(super) sources: &'a BTreeMap<String, Source>,
    pub(super) kube: Option<&'a Kube>,
    pub(super) spot_watcher: Option<&'a SpotWatcher>,
    /// Whether this replica may write, checked right before every write.
    pub(super) leader: &'a Leadership,
    pub(super) dry_run: bool,
    pub(super) metrics: &'a Metrics,
    /// The policy's clock: time since the daemon started.
    pub(super) now: Duration,
}
