//! The reads a plan is made from: the target's workload (and spot twin), the twin's health from
//! the watches, and, before a scale-down of a protected target, which worker pods are busy.

use std::collections::BTreeMap;

use super::Sources;
use super::events::{BusyLearned, BusyUnknown, DeploymentUnreadable, InternalEvent};
use super::plan::{Busy, BusyPods, Cluster, Seen};
use super::target::TargetState;
use crate::config::{Target, WorkloadKind};
use crate::k8s::spot::{SpotHealth, SpotWatcher};
use crate::k8s::{Kube, KubeError};
use crate::metrics::Metrics;
use crate::source::SourceError;

/// What the reads of one cycle go through.
pub(super) struct Reader<'a> {
    pub(super) kube: Option<&'a Kube>,
    pub(super) spot: Option<&'a SpotWatcher>,
    pub(super) sources: &'a Sources,
    pub(super) metrics: &'a Metrics,
}

/// Why the busy workers could not be learned.
#[derive(Debug, thiserror::Error)]
pub(super) enum BusyError {
    #[error("the busy-workers source {0} is not configured")]
    NoSource(String),
    #[error("the busy-workers source cannot tell which workers are busy")]
    NotSupported,
    #[error("asking the busy-workers source: {0}")]
    Source(#[from] SourceError),
    #[error("listing the worker pods: {0}")]
    Pods(#[from] KubeError),
    #[error("the workload {0} has no pod selector")]
    NoSelector(String),
}

impl BusyError {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            BusyError::NoSource(_) | BusyError::NotSupported => "busy_source",
            BusyError::Source(error) => error.label(),
            BusyError::Pods(error) => error.label(),
            BusyError::NoSelector(_) => "no_selector",
        }
    }
}

impl Reader<'_> {
    /// Reads the workload (and its spot twin), if there is a cluster.
    pub(super) async fn cluster(&self, target: &TargetState) -> (Cluster, Option<KubeError>) {
        let Some(kube) = self.kube else { return (Cluster::Absent, None) };
        match read(kube, &target.spec).await {
            Ok(seen) => (Cluster::Read(seen), None),
            Err(error) => {
                DeploymentUnreadable { target: &target.labels, spec: &target.spec, error: &error }.emit(self.metrics);
                (Cluster::Unreadable, Some(error))
            }
        }
    }

    /// The spot twin's health from the watches, starting its pod watch on first need.
    pub(super) async fn spot_health(&self, target: &mut TargetState, cluster: &Cluster) -> Option<SpotHealth> {
        let (spot, watcher) = (target.spec.spot.as_ref()?, self.spot?);
        let Cluster::Read(seen) = cluster else { return None };
        let selector = seen.twin.as_ref()?.selector.as_deref()?;
        let pods = target.spot_pods.take().filter(|w| w.selector() == selector);
        let pods = match pods {
            Some(pods) => pods,
            None => watcher.watch_pods(&target.spec.namespace, selector).await,
        };
        let health = watcher.health(&pods, spot.unschedulable_after, &spot.extra_taints).await;
        target.spot_pods = Some(pods);
        health
    }

    /// Which worker pods run tasks, over the target's workloads.
    pub(super) async fn busy(&self, target: &TargetState, cluster: &Cluster) -> Busy {
        let (Some(config), Some(kube), Cluster::Read(seen)) = (&target.spec.busy, self.kube, cluster) else {
            return Busy::NotAsked;
        };
        match learn(self.sources, kube, &target.spec, &config.source, seen).await {
            Ok(pods) => {
                BusyLearned { target: &target.labels, busy: pods.total() }.emit(self.metrics);
                Busy::Known(pods)
            }
            Err(error) => {
                BusyUnknown { target: &target.labels, name: &target.spec.name, error: &error }.emit(self.metrics);
                Busy::Unknown
            }
        }
    }
}

async fn read(kube: &Kube, spec: &Target) -> Result<Seen, KubeError> {
    let main = kube.observe(&spec.namespace, spec.kind, &spec.workload).await?;
    let twin = match &spec.spot {
        Some(spot) => Some(kube.observe(&spec.namespace, WorkloadKind::Deployment, &spot.deployment).await?),
        None => None,
    };
    Ok(Seen { main, twin })
}

/// Asks the source which hosts run tasks and lists each workload's pods by its selector.
async fn learn(
    sources: &Sources,
    kube: &Kube,
    spec: &Target,
    source: &str,
    seen: &Seen,
) -> Result<BusyPods, BusyError> {
    let source = sources.get(source).ok_or_else(|| BusyError::NoSource(source.to_owned()))?;
    let hosts = source.busy_hosts().await.ok_or(BusyError::NotSupported)??;
    let mut workloads = vec![(spec.workload.as_str(), seen.main.selector.as_deref())];
    if let (Some(spot), Some(twin)) = (&spec.spot, &seen.twin) {
        workloads.push((spot.deployment.as_str(), twin.selector.as_deref()));
    }
    let mut pods = BTreeMap::new();
    for (name, selector) in workloads {
        let selector = selector.ok_or_else(|| BusyError::NoSelector(name.to_owned()))?;
        pods.insert(name.to_owned(), kube.pods(&spec.namespace, selector).await?);
    }
    Ok(BusyPods { hosts, pods })
}
