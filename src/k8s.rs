//! The Kubernetes edge: read a workload (a Deployment or a StatefulSet), write its `scale`
//! subresource, record Events. Knows nothing of queues.

mod error;
pub mod lease;
pub mod pods;
pub mod spot;

pub use error::KubeError;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::config::WorkloadKind;
use crate::policy::Pause;

/// Annotation that freezes a workload: the daemon never writes it.
pub const PAUSED: &str = "queue-autoscaler.io/paused";
/// Annotation that pins a workload to N replicas (within the target's bounds).
pub const PAUSED_REPLICAS: &str = "queue-autoscaler.io/paused-replicas";

/// The Events API's limit on a note, in bytes (k8s.io/api `events/v1`, `Event.note`: "must be at
/// most 1kB").
const NOTE_LIMIT: usize = 1024;

/// What a read of a workload tells the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// What was read: writes and Events go to the same kind.
    pub kind: WorkloadKind,
    /// `spec.replicas` (the scale subresource's `spec.replicas`).
    pub replicas: u32,
    /// `status.readyReplicas` (absent in the status: none ready); `None` without a status.
    pub ready: Option<u32>,
    pub pause: Pause,
    /// The version read, sent back as an optimistic-concurrency precondition.
    pub resource_version: Option<String>,
    /// The pod label selector (`app=worker,tier in (a,b)`), to find the workload's pods.
    pub selector: Option<String>,
    uid: Option<String>,
}

impl Observed {
    /// A Deployment as if read with `replicas` and `pause`, all ready, without a version: for
    /// tests of what is planned from a read.
    pub fn with(replicas: u32, pause: Pause) -> Self {
        let kind = WorkloadKind::Deployment;
        Observed { kind, replicas, ready: Some(replicas), pause, resource_version: None, selector: None, uid: None }
    }

    /// The same, read as a StatefulSet.
    pub fn statefulset(replicas: u32, pause: Pause) -> Self {
        Observed { kind: WorkloadKind::StatefulSet, ..Observed::with(replicas, pause) }
    }

    /// Reads what the decision needs off a workload's object; both kinds have the same fields.
    fn of<K: Resource>(
        kind: WorkloadKind,
        object: &K,
        replicas: Option<i32>,
        ready: Option<Option<i32>>,
        selector: Option<&LabelSelector>,
    ) -> Self {
        let annotations = object.annotations();
        Observed {
            kind,
            // Absent, the API server's default applies (1, for both kinds).
            replicas: u32::try_from(replicas.unwrap_or(1)).unwrap_or(0),
            ready: ready.map(|r| u32::try_from(r.unwrap_or(0)).unwrap_or(0)),
            pause: pause(annotations.get(PAUSED), annotations.get(PAUSED_REPLICAS)),
            resource_version: object.resource_version(),
            selector: selector.and_then(label_selector),
            uid: object.uid(),
        }
    }
}

/// An Event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// The Kubernetes API, as the daemon uses it: Deployments and StatefulSets, their pods, Events.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    /// The same cluster without a read timeout: a watch waits for changes for minutes.
    watch_client: Client,
    field_manager: String,
    /// `reportingInstance` on Events: the pod's name.
    instance: Option<String>,
    timeout: Duration,
}

impl Kube {
    /// Connects with the in-cluster config, else KUBECONFIG / ~/.kube/config; every request is
    /// bounded by `timeout`, retries included.
    pub async fn connect(field_manager: &str, timeout: Duration) -> Result<Self, KubeError> {
        let mut config = kube::Config::infer().await.map_err(|e| KubeError::NoCluster(e.to_string()))?;
        // kube-client's default retry (kube-client `client/retry.rs`, `RetryPolicy::server_retry`)
        // retries 429/503/504 up to 15 times with backoff up to 1000 s, honouring Retry-After: a
        // call could outlive its cycle by minutes. A failed call fails this cycle; the next
        // cycle reads again.
        config.default_retry = false;
        config.connect_timeout = Some(timeout);
        let mut watch_config = config.clone();
        watch_config.read_timeout = None;
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let client = Client::try_from(config).map_err(|e| KubeError::NoCluster(e.to_string()))?;
        let watch_client = Client::try_from(watch_config).map_err(|e| KubeError::NoCluster(e.to_string()))?;
        let instance = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty());
        Ok(Kube { client, watch_client, field_manager: field_manager.to_owned(), instance, timeout })
    }

    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(&self, namespace: &str) -> Api<K>
    where
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Runs one API call within the timeout, whatever the transport's own timeouts did.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T, kube::Error>>) -> Result<T, KubeError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(KubeError::from_kube),
            Err(_) => Err(KubeError::Transport(format!("no answer within {:?}", self.timeout))),
        }
    }

    /// Reads the workload: replicas, pause annotations, version.
    pub async fn observe(&self, namespace: &str, kind: WorkloadKind, name: &str) -> Result<Observed, KubeError> {
        Ok(match kind {
            WorkloadKind::Deployment => {
                let d: Deployment = self.bounded(self.api(namespace).get(name)).await?;
                let spec = d.spec.as_ref();
                let ready = d.status.as_ref().map(|s| s.ready_replicas);
                Observed::of(kind, &d, spec.and_then(|s| s.replicas), ready, spec.map(|s| &s.selector))
            }
            WorkloadKind::StatefulSet => {
                let s: StatefulSet = self.bounded(self.api(namespace).get(name)).await?;
                let spec = s.spec.as_ref();
                let ready = s.status.as_ref().map(|s| s.ready_replicas);
                Observed::of(kind, &s, spec.and_then(|s| s.replicas), ready, spec.map(|s| &s.selector))
            }
        })
    }

    /// Sets `spec.replicas` through the scale subresource of the kind read, with the version
    /// read as a precondition. A 409 is [`KubeError::Conflict`]: someone changed the workload
    /// since it was read, so the caller reads it again and plans again; the old number is never
    /// retried.
    pub async fn scale(&self, namespace: &str, name: &str, seen: &Observed, replicas: u32) -> Result<(), KubeError> {
        let params = PatchParams { field_manager: Some(self.field_manager.clone()), ..PatchParams::default() };
        let body =
            json!({ "metadata": { "resourceVersion": seen.resource_version }, "spec": { "replicas": replicas } });
        let patch = Patch::Merge(&body);
        match seen.kind {
            WorkloadKind::Deployment => {
                self.bounded(self.api::<Deployment>(namespace).patch_scale(name, &params, &patch)).await?;
            }
            WorkloadKind::StatefulSet => {
                self.bounded(self.api::<StatefulSet>(namespace).patch_scale(name, &params, &patch)).await?;
            }
        }
        Ok(())
    }

    /// The client, for the lease.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The client for watches: no read timeout, since a watch is quiet while nothing changes.
    pub fn watch_client(&self) -> Client {
        self.watch_client.clone()
    }

    /// Records a new Event with this type, reason and note on the workload read. Each call creates
    /// its own Event: kube-runtime's `Recorder` merges Events of the same reason into a series
    /// that keeps the first note, which hid every rescale after the first (issue #13).
    pub async fn record(
        &self,
        namespace: &str,
        name: &str,
        seen: &Observed,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), KubeError> {
        let regarding = ObjectReference {
            api_version: Some("apps/v1".to_owned()),
            kind: Some(seen.kind.as_str().to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: seen.uid.clone(),
            ..ObjectReference::default()
        };
        let now = Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            action: Some("Scale".to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(truncate(note, NOTE_LIMIT)),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding),
            reporting_controller: Some(self.field_manager.clone()),
            reporting_instance: Some(self.instance.clone().unwrap_or_else(|| self.field_manager.clone())),
            type_: Some(format!("{type_:?}")),
            ..Event::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        self.bounded(events.create(&PostParams::default(), &event)).await?;
        Ok(())
    }
}

/// A label selector in the API's query syntax: `a=b,c in (d,e),!f`.
fn label_selector(selector: &LabelSelector) -> Option<String> {
    let labels = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}"));
    let expressions = selector.match_expressions.iter().flatten().map(|e| {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "DoesNotExist" => format!("!{}", e.key),
            _ => e.key.clone(),
        }
    });
    let parts: Vec<String> = labels.chain(expressions).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The pause the annotations ask for; `paused-replicas` wins, like KEDA's. An unreadable count
/// freezes the Deployment: the operator asked for a pause, so writing would be the worse mistake.
fn pause(paused: Option<&String>, paused_replicas: Option<&String>) -> Pause {
    match (paused.map(|p| p.trim()), paused_replicas.map(|r| r.trim().parse::<u32>())) {
        (_, Some(Ok(n))) => Pause::Pinned(n),
        (_, Some(Err(_))) => Pause::Frozen,
        (Some(p), None) if p.eq_ignore_ascii_case("true") => Pause::Frozen,
        _ => Pause::None,
    }
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let end = (0..=max.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_annotations() {
        let s = |v: &str| Some(v.to_owned());
        let cases = [
            (None, None, Pause::None),
            (s("true"), None, Pause::Frozen),
            (s("True"), None, Pause::Frozen),
            (s("false"), None, Pause::None),
            (None, s("4"), Pause::Pinned(4)),
            (s("true"), s("0"), Pause::Pinned(0)),
            (None, s("four"), Pause::Frozen),
        ];
        for (paused, replicas, expected) in cases {
            assert_eq!(pause(paused.as_ref(), replicas.as_ref()), expected, "{paused:?} {replicas:?}");
        }
    }

    #[test]
    fn label_selectors_in_query_syntax() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| (*v).into()).collect()),
        };
        let selector = LabelSelector {
            match_labels: Some([("app".to_owned(), "worker".to_owned())].into()),
            match_expressions: Some(vec![
                requirement("tier", "In", &["a", "b"]),
                requirement("zone", "NotIn", &["x"]),
                requirement("spot", "Exists", &[]),
                requirement("legacy", "DoesNotExist", &[]),
            ]),
        };
        assert_eq!(label_selector(&selector).as_deref(), Some("app=worker,tier in (a,b),zone notin (x),spot,!legacy"));
        assert_eq!(label_selector(&LabelSelector::default()), None);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        // "→" is 3 bytes: a 4-byte cut keeps "a" and drops the arrow rather than split it.
        assert_eq!(truncate("a→cd", 4), "a→");
        assert_eq!(truncate("a→cd", 3), "a");
        assert_eq!(truncate("abc", 10), "abc");
        assert!(truncate(&"é".repeat(1000), NOTE_LIMIT).len() <= NOTE_LIMIT);
    }
}
