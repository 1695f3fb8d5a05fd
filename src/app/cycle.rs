//! One cycle: poll each needed source once, then run every due target.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use tokio::time::Instant;

use super::Sources;
use super::apply::Writer;
use super::events::{InternalEvent, SourcePolled};
use super::observe::Reader;
use super::target::{TargetState, next_due};
use super::{App, TargetReport};
use crate::metrics::Metrics;
use crate::source::{Reading, SourceError};

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
        let reader = Reader {
            kube: self.kube.as_ref(),
            spot: self.spot_watcher.as_ref(),
            sources: &self.sources,
            metrics: &self.metrics,
        };
        let writer = Writer {
            kube: self.kube.as_ref(),
            leadership: &self.leadership,
            dry_run: self.dry_run,
            metrics: &self.metrics,
        };
        let runs = self.targets.iter_mut().filter(|t| due(t)).map(|t| t.run(&readings, &reader, &writer, clock));
        let reports = join_all(runs).await;
        for target in self.targets.iter_mut().filter(|t| due(t)) {
            target.next_due = next_due(target.next_due, target.spec.interval, now);
        }
        self.metrics.loop_finished(now.elapsed());
        reports
    }
}

/// Polls each source once, concurrently.
async fn poll(sources: &Sources, needed: BTreeSet<&str>, metrics: &Metrics) -> Readings {
    let polls = needed.into_iter().filter_map(|name| sources.get_key_value(name)).map(|(name, source)| async move {
        let started = Instant::now();
        let result = source.poll().await;
        SourcePolled {
            source: name,
            kind: source.kind(),
            result: &result,
            took: started.elapsed(),
            partitions: source.partition_metrics(),
        }
        .emit(metrics);
        (name.clone(), result)
    });
    join_all(polls).await.into_iter().collect()
}
