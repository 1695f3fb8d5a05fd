//! Spot health from watches (kube-runtime reflectors) of the spot twin's pods and the Nodes —
//! never a list per poll.
//!
//! A spot replica counts as a shortfall when its pod has been Pending and Unschedulable for longer
//! than `unschedulable_after` (the scheduler's `PodScheduled=False` condition with reason
//! `Unschedulable`, k8s.io/api `core/v1/types.go`), or runs on a node being reclaimed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

/// Taint keys that mark a node as being reclaimed or drained. `aws-node-termination-handler/…`
/// keys match by prefix (spot-itn, rebalance-recommendation, scheduled-maintenance,
/// asg-lifecycle-termination, …).
pub const RECLAIM_TAINTS: [&str; 6] = [
    "karpenter.sh/disrupted",
    "karpenter.sh/disruption",
    "cloud.google.com/impending-node-termination",
    "node.kubernetes.io/unschedulable",
    "ToBeDeletedByClusterAutoscaler",
    "DeletionCandidateOfClusterAutoscaler",
];
const NTH_TAINT_PREFIX: &str = "aws-node-termination-handler/";

/// Spot replicas that cannot do their work now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpotHealth {
    /// Pods Pending as Unschedulable for longer than the threshold.
    pub unschedulable: u32,
    /// Pods on nodes being reclaimed or cordoned.
    pub reclaimed: u32,
}

impl SpotHealth {
    pub fn shortfall(&self) -> u32 {
        self.unschedulable + self.reclaimed
    }
}

/// Called with each watch error: which watch ("pods" or "nodes"), its bounded label, the error.
pub type OnWatchError = Arc<dyn Fn(&'static str, &'static str, &watcher::Error) + Send + Sync>;

/// Shared watches: one on the Nodes for all targets, one on the pods of each spot twin. They use
/// a client without a read timeout (a quiet watch is not a dead one); kube-runtime's watcher
/// resumes from the last resourceVersion and lists again after a 410 Gone (kube-runtime
/// `watcher.rs`, `step_trampolined`), with backoff between failures.
pub struct SpotWatcher {
    client: Client,
    on_error: OnWatchError,
    nodes: OnceCell<Store<Node>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The watch on one spot twin's pods. Dropping it stops the watch, so a target that is removed
/// or whose twin changes by reload leaves no watch behind.
pub struct PodWatch {
    selector: String,
    store: Store<Pod>,
    task: JoinHandle<()>,
}

impl PodWatch {
    /// The label selector the watch was started with.
    pub fn selector(&self) -> &str {
        &self.selector
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SpotWatcher {
    /// `client`: one without a read timeout ([`crate::k8s::Kube::watch_client`]).
    pub fn new(client: Client, on_error: OnWatchError) -> Self {
        SpotWatcher { client, on_error, nodes: OnceCell::new(), tasks: Mutex::new(Vec::new()) }
    }

    /// Starts watching the pods in `namespace` that match `selector`, and waits (briefly) for
    /// its first list.
    pub async fn watch_pods(&self, namespace: &str, selector: &str) -> PodWatch {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let (store, task) = self.reflect("pods", api, watcher::Config::default().labels(selector));
        wait_ready(&store).await;
        PodWatch { selector: selector.to_owned(), store, task }
    }

    async fn nodes(&self) -> &Store<Node> {
        self.nodes
            .get_or_init(|| async {
                let (nodes, task) = self.reflect("nodes", Api::all(self.client.clone()), watcher::Config::default());
                self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
                wait_ready(&nodes).await;
                nodes
            })
            .await
    }

    fn reflect<K>(&self, what: &'static str, api: Api<K>, config: watcher::Config) -> (Store<K>, JoinHandle<()>)
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let (reader, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, config)).default_backoff().applied_objects();
        let on_error = self.on_error.clone();
        let task = tokio::spawn(stream.for_each(move |item| {
            if let Err(error) = item {
                on_error(what, error_label(&error), &error);
            }
            std::future::ready(())
        }));
        (reader, task)
    }

    /// The health of the pods in `pods`, or `None` while a watch has not listed yet.
    pub async fn health(
        &self,
        pods: &PodWatch,
        unschedulable_after: Duration,
        extra_taints: &[String],
    ) -> Option<SpotHealth> {
        let (pods, nodes) = (&pods.store, self.nodes().await);
        if !is_ready(pods) || !is_ready(nodes) {
            return None;
        }
        let lookup = |name: &str| nodes.find(|n| n.metadata.name.as_deref() == Some(name));
        Some(health(&pods.state(), lookup, unschedulable_after, extra_taints, Timestamp::now()))
    }

    /// Stops the Node watch (pod watches stop when their [`PodWatch`] is dropped).
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

impl Drop for SpotWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bounded label for a watch error: `gone` for a 410 (the watcher lists again), else where it
/// failed.
pub fn error_label(error: &watcher::Error) -> &'static str {
    match error {
        watcher::Error::WatchError(status) if status.code == 410 => "gone",
        watcher::Error::WatchError(_) => "watch_error",
        watcher::Error::InitialListFailed(_) => "list",
        watcher::Error::WatchStartFailed(_) => "watch_start",
        watcher::Error::WatchFailed(_) => "watch_failed",
        watcher::Error::NoResourceVersion => "no_resource_version",
    }
}

/// Every [`error_label`], for zero registration.
pub const WATCH_ERROR_LABELS: [&str; 6] =
    ["gone", "watch_error", "list", "watch_start", "watch_failed", "no_resource_version"];

/// How long a new watch may take to list before a cycle goes on without it.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(2);

/// Waits (briefly) for a new watch's first list, so the first cycle already sees spot health.
pub async fn wait_ready<K>(store: &Store<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let _ = tokio::time::timeout(FIRST_LIST_WAIT, store.wait_until_ready()).await;
}

fn is_ready<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
}

/// Classifies the twin's pods: terminating and finished pods are already gone and do not count.
pub fn health(
    pods: &[Arc<Pod>],
    node: impl Fn(&str) -> Option<Arc<Node>>,
    unschedulable_after: Duration,
    extra_taints: &[String],
    now: Timestamp,
) -> SpotHealth {
    let mut health = SpotHealth::default();
    for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        if matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        match node_name {
            Some(name) if node(name).is_some_and(|n| reclaimed(&n, extra_taints)) => health.reclaimed += 1,
            None if unschedulable_since(pod).is_some_and(|since| waited(since, now) > unschedulable_after) => {
                health.unschedulable += 1;
            }
            _ => {}
        }
    }
    health
}

/// When the scheduler last said the pod cannot be placed (`PodScheduled=False`, `Unschedulable`).
fn unschedulable_since(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let condition = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))?;
    condition
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn waited(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

/// Cordoned, or tainted by a termination handler, Karpenter, GKE, the cluster autoscaler or
/// one of `extra_taints`.
pub fn reclaimed(node: &Node, extra_taints: &[String]) -> bool {
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return true;
    }
    let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
    taints.iter().any(|t| {
        t.key.starts_with(NTH_TAINT_PREFIX) || RECLAIM_TAINTS.contains(&t.key.as_str()) || extra_taints.contains(&t.key)
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeSpec, PodCondition, PodSpec, PodStatus, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn now() -> Timestamp {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    fn pending(minutes_ago: i64) -> Arc<Pod> {
        let since = now() - jiff::SignedDuration::from_mins(minutes_ago);
        Arc::new(Pod {
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("Unschedulable".into()),
                    last_transition_time: Some(Time(since)),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        })
    }

    fn running_on(node: &str) -> Arc<Pod> {
        Arc::new(Pod {
            spec: Some(PodSpec { node_name: Some(node.into()), ..PodSpec::default() }),
            status: Some(PodStatus { phase: Some("Running".into()), ..PodStatus::default() }),
            ..Pod::default()
        })
    }

    fn node(taints: &[&str], cordoned: bool) -> Node {
        Node {
            spec: Some(NodeSpec {
                unschedulable: Some(cordoned),
                taints: Some(
                    taints
                        .iter()
                        .map(|k| Taint { key: (*k).into(), effect: "NoSchedule".into(), ..Taint::default() })
                        .collect(),
                ),
                ..NodeSpec::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn reclaim_signals() {
        let extra = vec!["example.com/draining".to_owned()];
        let cases = [
            (node(&[], false), false),
            (node(&["aws-node-termination-handler/spot-itn"], false), true),
            (node(&["aws-node-termination-handler/rebalance-recommendation"], false), true),
            (node(&["karpenter.sh/disrupted"], false), true),
            (node(&["cloud.google.com/impending-node-termination"], false), true),
            (node(&[], true), true),
            (node(&["example.com/draining"], false), true),
            (node(&["kubernetes.azure.com/scalesetpriority"], false), false),
        ];
        for (n, expected) in cases {
            assert_eq!(reclaimed(&n, &extra), expected, "{:?}", n.spec);
        }
    }

    #[test]
    fn counts_long_unschedulable_pods_and_pods_on_reclaimed_nodes() {
        let nodes = |name: &str| match name {
            "healthy" => Some(Arc::new(node(&[], false))),
            "leaving" => Some(Arc::new(node(&["aws-node-termination-handler/spot-itn"], false))),
            _ => None,
        };
        let mut terminating = (*running_on("leaving")).clone();
        terminating.metadata.deletion_timestamp = Some(Time(now()));
        let pods = vec![
            pending(5),
            pending(1),
            running_on("healthy"),
            running_on("leaving"),
            running_on("leaving"),
            Arc::new(terminating),
            running_on("unknown-node"),
        ];
        let h = health(&pods, nodes, Duration::from_secs(180), &[], now());
        assert_eq!(h, SpotHealth { unschedulable: 1, reclaimed: 2 });
        assert_eq!(h.shortfall(), 3);
    }
}
