//! The objects the fixtures create, in the JSON shapes the real API server returns.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

/// A Deployment or StatefulSet with `replicas` whose pods carry `app=<name>`.
pub fn workload(kind: &str, namespace: &str, name: &str, replicas: i64) -> Value {
    let mut object = json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": { "name": name, "namespace": namespace, "annotations": {}, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "worker", "image": "worker" }] },
            },
        },
        "status": { "replicas": replicas },
    });
    if kind == "StatefulSet" {
        object["spec"]["serviceName"] = json!(name);
        object["spec"]["podManagementPolicy"] = json!("OrderedReady");
    }
    object
}

/// Where a pod is: scheduled on a node and Running, or Pending (Unschedulable since some time ago).
#[derive(Debug, Clone, Copy)]
pub enum Placement<'a> {
    On(&'a str),
    Pending,
    UnschedulableFor(Duration),
}

pub fn pod(namespace: &str, name: &str, labels: Map<String, Value>, placement: Placement) -> Value {
    let now = SystemTime::now();
    let (node, phase, conditions) = match placement {
        Placement::On(node) => (
            Some(node),
            "Running",
            json!([{ "type": "PodScheduled", "status": "True" }, { "type": "Ready", "status": "True" }]),
        ),
        Placement::UnschedulableFor(ago) => (
            None,
            "Pending",
            json!([{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
                     "lastTransitionTime": rfc3339(now - ago) }]),
        ),
        Placement::Pending => (None, "Pending", json!([])),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "uid": format!("uid-pod-{namespace}-{name}"), "labels": labels,
                      "annotations": {}, "creationTimestamp": rfc3339(now - Duration::from_secs(60)) },
        "spec": { "nodeName": node, "containers": [{ "name": "worker", "image": "worker" }] },
        "status": { "phase": phase, "conditions": conditions },
    })
}

/// Pod `<set>-<ordinal>` of a StatefulSet, with the labels its controller adds
/// (`statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`), Running.
pub fn ordinal_pod(set: &Value, ordinal: i64) -> Value {
    let set_name = set["metadata"]["name"].as_str().unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let mut labels = set["spec"]["template"]["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert("statefulset.kubernetes.io/pod-name".to_owned(), json!(name));
    labels.insert("apps.kubernetes.io/pod-index".to_owned(), json!(ordinal.to_string()));
    let namespace = set["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut pod = pod(namespace, &name, labels, Placement::On("node-1"));
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": set_name,
        "uid": set["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    }]);
    pod
}

/// A spot node (`karpenter.sh/capacity-type: spot`) with these NoSchedule taint keys.
pub fn node(name: &str, taints: &[&str], cordoned: bool) -> Value {
    let taints: Vec<Value> = taints.iter().map(|k| json!({ "key": k, "effect": "NoSchedule" })).collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "uid": format!("uid-node-{name}"), "labels": { "karpenter.sh/capacity-type": "spot" } },
        "spec": { "taints": taints, "unschedulable": cordoned },
    })
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// RFC 3339 UTC with seconds, as the API server writes times.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}
