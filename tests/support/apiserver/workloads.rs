//! Deployments and StatefulSets: their `scale` subresource (autoscaling/v1 Scale), and what their
//! controllers would do at once after a change (status follows spec; a StatefulSet's pods
//! `<name>-<ordinal>` follow its replicas, the highest ordinals removed first, as
//! kubernetes pkg/controller/statefulset does).

use std::time::Instant;

use axum::response::Response;
use serde_json::{Value, json};

use super::call::Call;
use super::objects::{merge, ordinal_pod};
use super::record::ScaleWrite;
use super::resource::Resource;
use super::selector::Selector;
use super::status::{FieldError, conflict, invalid, not_found, ok};
use super::store::{Key, Store};
use super::validation::replicas_errors;

/// The Scale of a Deployment or StatefulSet.
pub fn scale_of(object: &Value) -> Value {
    let labels = object["spec"]["selector"]["matchLabels"].as_object();
    let selector: Vec<String> =
        labels.into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
            "uid": object["metadata"]["uid"], "resourceVersion": object["metadata"]["resourceVersion"],
            "creationTimestamp": object["metadata"]["creationTimestamp"],
        },
        "spec": { "replicas": object["spec"]["replicas"] },
        "status": { "replicas": object["status"]["replicas"], "selector": selector.join(",") },
    })
}

pub fn get_scale(store: &Store, key: &Key) -> Response {
    match store.get(key) {
        Some(object) => ok(scale_of(object)),
        None => not_found(key.resource, &key.name),
    }
}

/// A PUT of a whole Scale, or a PATCH of one (merge, strategic and apply are all merged here,
/// which is the same for a Scale). A `metadata.resourceVersion` in the body is a precondition.
pub fn write_scale(store: &mut Store, call: &Call, key: &Key) -> Response {
    let Some(object) = store.get(key).cloned() else {
        return not_found(key.resource, &key.name);
    };
    let current = scale_of(&object);
    let wanted = if call.verb == "update" {
        call.body.clone()
    } else {
        let mut merged = current.clone();
        merge(&mut merged, &call.body);
        merged
    };
    let precondition = &call.body["metadata"]["resourceVersion"];
    if !precondition.is_null() && *precondition != current["metadata"]["resourceVersion"] {
        return conflict(key.resource, &key.name);
    }
    // Scale.spec.replicas is `omitempty`: a PUT without it asks for 0.
    let replicas = &wanted["spec"]["replicas"];
    let errors: Vec<FieldError> = replicas_errors(replicas);
    if !errors.is_empty() {
        return invalid("Scale", "autoscaling", &key.name, &errors);
    }
    let replicas = replicas.as_i64().unwrap_or(0);
    store.scale_writes.push(ScaleWrite {
        kind: key.resource.kind(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        replicas,
        method: write_method(call),
        field_manager: call.query.get("fieldManager").map(str::to_owned),
        token: call.token.clone(),
        at: Instant::now(),
    });
    let mut object = object;
    object["spec"]["replicas"] = json!(replicas);
    ok(scale_of(&store.put(key.clone(), object)))
}

fn write_method(call: &Call) -> &'static str {
    match (call.verb, call.content_type.as_str()) {
        ("update", _) => "put",
        (_, t) if t.starts_with("application/apply-patch") => "apply",
        (_, t) if t.starts_with("application/strategic-merge-patch") => "strategic",
        _ => "merge",
    }
}

/// Status follows spec at once, as if the controller had already converged.
pub fn converge_status(resource: Resource, object: &mut Value) {
    if resource.scalable() {
        object["status"]["replicas"] = object["spec"]["replicas"].clone();
    }
}

impl Store {
    /// What the controllers would do after `key` changed, done at once.
    pub fn settle(&mut self, key: &Key) {
        if key.resource == Resource::StatefulSets {
            self.follow_ordinals(key);
        }
    }

    /// Deletes the pods at ordinals ≥ replicas (highest first), then creates the missing ones.
    fn follow_ordinals(&mut self, key: &Key) {
        let Some(set) = self.get(key).cloned() else { return };
        let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1);
        let mut existing: Vec<i64> = self
            .list(Resource::Pods, Some(&key.namespace), &Selector::default())
            .iter()
            .filter(|pod| owner(pod) == Some(("StatefulSet", key.name.as_str())))
            .filter_map(|pod| pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"].as_str()?.parse().ok())
            .collect();
        existing.sort_unstable_by(|a, b| b.cmp(a));
        let pod_key = |ordinal: i64| Key::new(Resource::Pods, &key.namespace, &format!("{}-{ordinal}", key.name));
        for ordinal in existing.iter().filter(|o| **o >= replicas) {
            self.delete(&pod_key(*ordinal));
        }
        for ordinal in (0..replicas).filter(|o| !existing.contains(o)) {
            self.put(pod_key(ordinal), ordinal_pod(&set, ordinal));
        }
    }
}

/// The (kind, name) of the controller owning `object`.
fn owner(object: &Value) -> Option<(&str, &str)> {
    let owners = object["metadata"]["ownerReferences"].as_array()?;
    let controller = owners.iter().find(|o| o["controller"] == json!(true))?;
    Some((controller["kind"].as_str()?, controller["name"].as_str()?))
}
