//! A target's spot twin between cycles: its pod watch, placement history, and what was written.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;

use crate::config::SpotTarget;
use crate::k8s::Observed;
use crate::k8s::spot::{SpotHealth, SpotWatcher};
use crate::policy::spot::{self, Placement, SpotHistory};

pub(super) struct SpotState {
    pub(super) spec: SpotTarget,
    history: SpotHistory,
    /// The watch on the twin's pods, and the selector it was started with.
    pods: Option<(String, Store<Pod>)>,
    /// Extra on-demand replicas in the last placement written (or assumed), so that the policy
    /// sees the total it decided rather than the total plus the stand-ins.
    pub(super) applied_extra: u32,
}

impl SpotState {
    pub(super) fn new(spec: SpotTarget) -> Self {
        SpotState { spec, history: SpotHistory::new(), pods: None, applied_extra: 0 }
    }

    /// Spot health from the watches; `None` without a cluster or while a watch has not listed.
    pub(super) async fn health(
        &mut self,
        watcher: Option<&SpotWatcher>,
        namespace: &str,
        twin: Option<&Observed>,
    ) -> Option<SpotHealth> {
        let (watcher, selector) = (watcher?, twin?.selector.as_deref()?);
        if self.pods.as_ref().is_none_or(|(watched, _)| watched != selector) {
            let pods = watcher.watch_pods(namespace, selector);
            crate::k8s::spot::wait_ready(&pods).await;
            self.pods = Some((selector.to_owned(), pods));
        }
        let (_, pods) = self.pods.as_ref()?;
        watcher.health(pods, self.spec.unschedulable_after, &self.spec.extra_taints).await
    }

    /// Splits `total` between on-demand and spot, covering the shortfall.
    pub(super) fn place(&mut self, max: u32, total: u32, health: Option<SpotHealth>, now: Duration) -> Placement {
        let shortfall = health.map_or(0, |h| h.shortfall());
        spot::place(&self.spec.policy, max, total, shortfall, &mut self.history, now)
    }
}
