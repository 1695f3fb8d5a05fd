//! The Kubernetes edge: read a Deployment, write its `scale` subresource, record Events.
//! Knows nothing of queues.

mod error;
pub mod lease;
pub mod pods;
pub mod spot;

pub use error::KubeError;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::policy::Pause;

/// Annotation that freezes a Deployment: the daemon never writes it.
pub const PAUSED: &str = "queue-autoscaler.io/paused";
/// Annotation that pins a Deployment to N replicas (within the target's bounds).
pub const PAUSED_REPLICAS: &str = "queue-autoscaler.io/paused-replicas";

/// Writes after a conflict before giving up until the next cycle.
const CONFLICT_RETRIES: usize = 3;

/// What a read of a Deployment tells the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// `spec.replicas` (the scale subresource's `spec.replicas`).
    pub replicas: u32,
    /// `status.readyReplicas` (absent in the status: none ready); `None` without a status.
    pub ready: Option<u32>,
    pub pause: Pause,
    /// The version read, sent back as an optimistic-concurrency precondition.
    pub resource_version: Option<String>,
    /// The pod label selector (`app=worker,tier in (a,b)`), to find the Deployment's pods.
    pub selector: Option<String>,
    uid: Option<String>,
}

/// The Kubernetes API, as the daemon uses it: Deployments, their pods, Events.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    field_manager: String,
    recorder: Recorder,
}

impl Kube {
    /// Connects with the in-cluster config, else KUBECONFIG / ~/.kube/config; every request is
    /// bounded by `timeout`.
    pub async fn connect(field_manager: &str, timeout: Duration) -> Result<Self, KubeError> {
        let mut config = kube::Config::infer().await.map_err(|e| KubeError::NoCluster(e.to_string()))?;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let client = Client::try_from(config).map_err(|e| KubeError::NoCluster(e.to_string()))?;
        let instance = std::env::var("POD_NAME").ok();
        let reporter = Reporter { controller: field_manager.to_owned(), instance };
        let recorder = Recorder::new(client.clone(), reporter);
        Ok(Kube { client, field_manager: field_manager.to_owned(), recorder })
    }

    fn api(&self, namespace: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Reads the Deployment: replicas, pause annotations, version.
    pub async fn observe(&self, namespace: &str, name: &str) -> Result<Observed, KubeError> {
        let deployment = self.api(namespace).get(name).await.map_err(KubeError::from_kube)?;
        let replicas = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = deployment.status.as_ref().map(|s| u32::try_from(s.ready_replicas.unwrap_or(0)).unwrap_or(0));
        Ok(Observed {
            replicas: u32::try_from(replicas).unwrap_or(0),
            ready,
            pause: pause(deployment.annotations().get(PAUSED), deployment.annotations().get(PAUSED_REPLICAS)),
            resource_version: deployment.resource_version(),
            selector: deployment.spec.as_ref().and_then(|s| label_selector(&s.selector)),
            uid: deployment.uid(),
        })
    }

    /// Sets `spec.replicas` through the scale subresource, with the version read as a
    /// precondition; on a conflict, reads the scale again and retries. Returns the replicas the
    /// Deployment had just before the write (`None` if it already had `replicas`).
    pub async fn scale(
        &self,
        namespace: &str,
        name: &str,
        seen: &Observed,
        replicas: u32,
    ) -> Result<Option<u32>, KubeError> {
        let api = self.api(namespace);
        let params = PatchParams { field_manager: Some(self.field_manager.clone()), ..PatchParams::default() };
        let (mut from, mut version) = (seen.replicas, seen.resource_version.clone());
        for _ in 0..CONFLICT_RETRIES {
            let body = json!({ "metadata": { "resourceVersion": version }, "spec": { "replicas": replicas } });
            match api.patch_scale(name, &params, &Patch::Merge(&body)).await.map_err(KubeError::from_kube) {
                Ok(_) => return Ok(Some(from)),
                Err(KubeError::Conflict) => {
                    let scale = api.get_scale(name).await.map_err(KubeError::from_kube)?;
                    from = scale.spec.and_then(|s| s.replicas).and_then(|r| u32::try_from(r).ok()).unwrap_or(0);
                    if from == replicas {
                        return Ok(None);
                    }
                    version = scale.metadata.resource_version;
                }
                Err(other) => return Err(other),
            }
        }
        Err(KubeError::Conflict)
    }

    /// The client, for watches.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Records an Event on the Deployment (`SuccessfulRescale`, like the HPA's).
    pub async fn record_rescale(
        &self,
        namespace: &str,
        name: &str,
        seen: &Observed,
        to: u32,
        note: &str,
    ) -> Result<(), KubeError> {
        let note = format!("New size: {to}; reason: {note}");
        self.record(namespace, name, seen, EventType::Normal, "SuccessfulRescale", &note).await
    }

    /// Records an Event with this type, reason and note on the Deployment.
    pub async fn record(
        &self,
        namespace: &str,
        name: &str,
        seen: &Observed,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), KubeError> {
        let reference = ObjectReference {
            api_version: Some("apps/v1".to_owned()),
            kind: Some("Deployment".to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: seen.uid.clone(),
            ..ObjectReference::default()
        };
        let event = Event {
            type_,
            reason: reason.to_owned(),
            // The Events API limits a note to 1 kB.
            note: Some(truncate(note, 1000)),
            action: "Scale".to_owned(),
            secondary: None,
        };
        self.recorder.publish(&event, &reference).await.map_err(KubeError::from_kube)
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

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
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
        assert_eq!(truncate("ab→cd", 3), "ab→");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
