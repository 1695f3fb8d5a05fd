//! Worker pods and `controller.kubernetes.io/pod-deletion-cost`: the ReplicaSet removes the pods
//! with the lowest cost first (kubernetes `pkg/controller/controller_utils.go`,
//! `ActivePodsWithRanks.Less`), so idle pods get a low cost and busy
//! pods one that grows with their running tasks, set just before a scale-down.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{Kube, KubeError};

pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The cost of an idle pod: the default, so idle pods need no annotation.
const IDLE_COST: i32 = 0;
/// The cost added per running task: a busy pod always outranks an idle one.
const COST_PER_TASK: i32 = 1000;

/// A workload's pod, as far as scale-in cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPod {
    pub name: String,
    /// The deletion cost annotation now (absent counts as 0, as the ReplicaSet counts it).
    pub cost: i32,
}

/// The tasks running on `pod`: Airflow records the worker's hostname, which is the pod's name or
/// an FQDN whose first label is the pod's name (a StatefulSet-style headless service).
pub fn running_tasks(pod: &str, busy_hosts: &BTreeMap<String, u32>) -> u32 {
    busy_hosts
        .iter()
        .filter(|(host, _)| *host == pod || host.split('.').next() == Some(pod))
        .map(|(_, tasks)| *tasks)
        .fold(0, u32::saturating_add)
}

/// A StatefulSet pod's ordinal: its name is `<statefulset>-<ordinal>` (kubernetes
/// `pkg/controller/statefulset/stateful_set_utils.go`, `getPodName`); `None` for any other pod.
pub fn ordinal(statefulset: &str, pod: &str) -> Option<u32> {
    let digits = pod.strip_prefix(statefulset)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The deletion cost a pod with `tasks` running should have.
pub fn deletion_cost(tasks: u32) -> i32 {
    i32::try_from(tasks).unwrap_or(i32::MAX).saturating_mul(COST_PER_TASK).max(IDLE_COST)
}

/// The pods whose cost must change, and to what: only those (the API server asks that the
/// annotation not be rewritten needlessly).
pub fn cost_changes(pods: &[WorkerPod], busy_hosts: &BTreeMap<String, u32>) -> Vec<(String, i32)> {
    pods.iter()
        .map(|p| (p, deletion_cost(running_tasks(&p.name, busy_hosts))))
        .filter(|(p, cost)| p.cost != *cost)
        .map(|(p, cost)| (p.name.clone(), cost))
        .collect()
}

/// How many of `pods` run at least one task.
pub fn busy_pods(pods: &[WorkerPod], busy_hosts: &BTreeMap<String, u32>) -> u32 {
    let busy = pods.iter().filter(|p| running_tasks(&p.name, busy_hosts) > 0).count();
    u32::try_from(busy).unwrap_or(u32::MAX)
}

impl Kube {
    /// The live pods matching `selector` (not already terminating).
    pub async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<WorkerPod>, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = self.bounded(api.list(&ListParams::default().labels(selector))).await?;
        Ok(list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).filter_map(worker_pod).collect())
    }

    /// Sets a pod's deletion cost (a merge patch of one annotation, with the field manager).
    pub async fn set_deletion_cost(&self, namespace: &str, pod: &str, cost: i32) -> Result<(), KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams { field_manager: Some(self.field_manager.clone()), ..PatchParams::default() };
        let body = json!({ "metadata": { "annotations": { DELETION_COST: cost.to_string() } } });
        self.bounded(api.patch(pod, &params, &Patch::Merge(&body))).await?;
        Ok(())
    }
}

fn worker_pod(pod: &Pod) -> Option<WorkerPod> {
    let name = pod.metadata.name.clone()?;
    let annotations = pod.metadata.annotations.as_ref();
    let cost = annotations.and_then(|a| a.get(DELETION_COST)).and_then(|c| c.trim().parse().ok()).unwrap_or(0);
    Some(WorkerPod { name, cost })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[(&str, u32)]) -> BTreeMap<String, u32> {
        entries.iter().map(|(h, n)| ((*h).to_owned(), *n)).collect()
    }

    fn pod(name: &str, cost: i32) -> WorkerPod {
        WorkerPod { name: name.to_owned(), cost }
    }

    #[test]
    fn hostnames_match_pod_names_and_fqdns() {
        let busy = hosts(&[("worker-a", 2), ("worker-b.workers.data.svc.cluster.local", 1), ("worker-ab", 5)]);
        assert_eq!(running_tasks("worker-a", &busy), 2);
        assert_eq!(running_tasks("worker-b", &busy), 1);
        assert_eq!(running_tasks("worker", &busy), 0, "a prefix is not a match");
    }

    #[test]
    fn ordinals_come_from_the_statefulset_s_own_pod_names() {
        assert_eq!(ordinal("airflow-worker", "airflow-worker-0"), Some(0));
        assert_eq!(ordinal("airflow-worker", "airflow-worker-12"), Some(12));
        assert_eq!(ordinal("airflow-worker", "airflow-worker-x-1"), None, "another StatefulSet's pod");
        assert_eq!(ordinal("airflow-worker", "airflow-worker-"), None);
        assert_eq!(ordinal("airflow-worker", "airflow-worker-+1"), None);
        assert_eq!(ordinal("airflow-worker", "airflow-worker-99999999999"), None, "beyond u32");
        assert_eq!(ordinal("worker", "airflow-worker-1"), None);
    }

    #[test]
    fn costs_grow_with_tasks_and_only_changes_are_written() {
        assert_eq!(deletion_cost(0), 0);
        assert_eq!(deletion_cost(3), 3000);
        assert_eq!(deletion_cost(u32::MAX), i32::MAX);
        let busy = hosts(&[("a", 1), ("b", 2)]);
        let pods = [pod("a", 1000), pod("b", 0), pod("c", 0), pod("d", 5000)];
        assert_eq!(cost_changes(&pods, &busy), vec![("b".to_owned(), 2000), ("d".to_owned(), 0)]);
        assert_eq!(busy_pods(&pods, &busy), 2);
    }
}
