//! Busy-aware scale-in: before a scale-down, learn which worker pods run tasks (from Airflow's
//! task table and the Deployments' pods), keep them, and mark them costly to delete.

use std::collections::BTreeMap;

use super::cycle::Context;
use crate::config::BusyWorkers;
use crate::k8s::pods::{self, WorkerPod};
use crate::k8s::{Kube, KubeError};
use crate::source::SourceError;

/// What a target knows about its busy workers this cycle.
pub(super) enum Busy {
    /// No protection, or no scale-down to protect against.
    NotAsked,
    /// Could not be learned: nothing goes down this cycle.
    Unknown,
    Known(BusyPods),
}

/// Running tasks per hostname, and the pods of each Deployment.
pub(super) struct BusyPods {
    hosts: BTreeMap<String, u32>,
    pods: BTreeMap<String, Vec<WorkerPod>>,
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
    #[error("the Deployment {0} has no pod selector")]
    NoSelector(String),
}

impl BusyError {
    pub(super) fn label(&self) -> &'static str {
        match self {
            BusyError::NoSource(_) | BusyError::NotSupported => "busy_source",
            BusyError::Source(error) => error.label(),
            BusyError::Pods(error) => error.label(),
            BusyError::NoSelector(_) => "no_selector",
        }
    }
}

impl BusyPods {
    /// Busy pods over every Deployment of the target.
    pub(super) fn total(&self) -> u32 {
        self.pods.values().map(|p| pods::busy_pods(p, &self.hosts)).fold(0, u32::saturating_add)
    }

    /// Busy pods of one Deployment.
    pub(super) fn of(&self, deployment: &str) -> u32 {
        self.pods.get(deployment).map_or(0, |p| pods::busy_pods(p, &self.hosts))
    }

    /// The deletion costs of one Deployment's pods that must change.
    pub(super) fn cost_changes(&self, deployment: &str) -> Vec<(String, i32)> {
        self.pods.get(deployment).map_or_else(Vec::new, |p| pods::cost_changes(p, &self.hosts))
    }
}

/// Asks the source which hosts run tasks and lists each Deployment's pods by its selector.
/// `deployments`: (name, pod selector).
pub(super) async fn learn(
    cx: &Context<'_>,
    kube: &Kube,
    namespace: &str,
    config: &BusyWorkers,
    deployments: &[(&str, Option<&str>)],
) -> Result<BusyPods, BusyError> {
    let source = cx.sources.get(&config.source).ok_or_else(|| BusyError::NoSource(config.source.clone()))?;
    let hosts = source.busy_hosts().await.ok_or(BusyError::NotSupported)??;
    let mut pods = BTreeMap::new();
    for (name, selector) in deployments {
        let selector = selector.ok_or_else(|| BusyError::NoSelector((*name).to_owned()))?;
        pods.insert((*name).to_owned(), kube.pods(namespace, selector).await?);
    }
    Ok(BusyPods { hosts, pods })
}
