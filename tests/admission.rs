//! deploy/components/pod-cost-only: the ValidatingAdmissionPolicy that lets queue-autoscaler's
//! ServiceAccount change nothing on a pod but its deletion cost. It parses into its Kubernetes
//! types, and its CEL expressions — evaluated here with the `cel` crate, as the API server would
//! on an UPDATE's `object` and `oldObject` — admit the patch the daemon sends and deny others.

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use serde_json::{Value, json};

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/components/pod-cost-only/admission-policy.yaml");
const COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn documents() -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    let text = std::fs::read_to_string(POLICY).unwrap();
    let values: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    assert_eq!(values.len(), 2, "the policy and its binding");
    let policy = serde_json::from_value(values[0].clone()).expect("a ValidatingAdmissionPolicy");
    (policy, serde_json::from_value(values[1].clone()).expect("its binding"))
}

/// Evaluates a CEL expression to a boolean with these variables.
fn eval(expression: &str, variables: &[(&str, &Value)]) -> bool {
    let program = cel::Program::compile(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    let mut context = cel::Context::default();
    for (name, value) in variables {
        context.add_variable(*name, (*value).clone()).unwrap();
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => b,
        other => panic!("{expression} gave {other:?}"),
    }
}

/// The messages of the validations that `object` (an update of `old`) fails.
fn denials(policy: &ValidatingAdmissionPolicy, old: &Value, object: &Value) -> Vec<String> {
    let validations = policy.spec.as_ref().unwrap().validations.clone().unwrap();
    validations
        .into_iter()
        .filter(|v| !eval(&v.expression, &[("object", object), ("oldObject", old)]))
        .map(|v| v.message.unwrap_or_default())
        .collect()
}

/// A running worker pod, as the API server stores it.
fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "worker-0", "namespace": "airflow", "labels": { "app": "worker" },
            "annotations": { "checksum/config": "abc" },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "worker-5d8f", "uid": "u1" }],
        },
        "spec": { "nodeName": "node-1", "containers": [{ "name": "worker", "image": "airflow:2.10" }] },
    })
}

/// RFC 7386 merge patch, as the API server applies the daemon's `Patch::Merge`.
fn merged(target: &Value, patch: &Value) -> Value {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            let mut out = t.clone();
            for (key, value) in p {
                if value.is_null() {
                    out.remove(key);
                } else {
                    out.insert(key.clone(), merged(t.get(key).unwrap_or(&Value::Null), value));
                }
            }
            Value::Object(out)
        }
        (_, p) => p.clone(),
    }
}

#[test]
fn the_policy_applies_to_pod_updates_by_this_service_account_and_denies() {
    let (policy, binding) = documents();
    let spec = policy.spec.as_ref().unwrap();
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    let rules = spec.match_constraints.as_ref().unwrap().resource_rules.clone().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].resources.as_deref(), Some(&["pods".to_owned()][..]));
    assert_eq!(rules[0].operations.as_deref(), Some(&["UPDATE".to_owned()][..]));
    let binding = binding.spec.unwrap();
    assert_eq!(binding.policy_name.as_ref(), policy.metadata.name.as_ref());
    assert_eq!(binding.validation_actions, Some(vec!["Deny".to_owned()]));

    let conditions = spec.match_conditions.clone().unwrap();
    let request = |user: &str| json!({ "userInfo": { "username": user } });
    let applies = |user: &str| conditions.iter().all(|c| eval(&c.expression, &[("request", &request(user))]));
    assert!(applies("system:serviceaccount:queue-autoscaler:queue-autoscaler"), "deploy/'s ServiceAccount");
    assert!(!applies("system:serviceaccount:kube-system:replicaset-controller"));
    assert!(!applies("alice@example.com"));
}

#[test]
fn the_daemons_own_patch_is_admitted() {
    let (policy, _) = documents();
    let old = pod();
    // target/pods.rs: { metadata: { annotations: { COST: "N" } } }, then back to 0.
    for cost in ["3000", "0"] {
        let object = merged(&old, &json!({ "metadata": { "annotations": { COST: cost } } }));
        assert_eq!(denials(&policy, &old, &object), Vec::<String>::new(), "cost {cost}");
    }
    let costly = merged(&old, &json!({ "metadata": { "annotations": { COST: "1000" } } }));
    let removed = merged(&costly, &json!({ "metadata": { "annotations": { COST: null } } }));
    assert!(denials(&policy, &costly, &removed).is_empty(), "removing the cost");
    let mut bare = pod();
    bare["metadata"].as_object_mut().unwrap().remove("annotations");
    let first = merged(&bare, &json!({ "metadata": { "annotations": { COST: "1000" } } }));
    assert!(denials(&policy, &bare, &first).is_empty(), "the first annotation of a pod");
}

#[test]
fn any_other_change_is_denied() {
    let (policy, _) = documents();
    let old = pod();
    let patches = [
        (json!({ "spec": { "containers": [{ "name": "worker", "image": "evil:latest" }] } }), "spec"),
        (json!({ "metadata": { "labels": { "app": "other" } } }), "labels"),
        (json!({ "metadata": { "labels": null } }), "labels"),
        (json!({ "metadata": { "annotations": { "checksum/config": "xyz", COST: "5" } } }), "annotation"),
        (json!({ "metadata": { "annotations": { "sidecar.istio.io/inject": "false" } } }), "annotation"),
        (json!({ "metadata": { "annotations": null } }), "annotation"),
        (json!({ "metadata": { "ownerReferences": null } }), "owners"),
        (json!({ "metadata": { "finalizers": ["example.com/hold"] } }), "finalizers"),
    ];
    for (patch, what) in patches {
        let object = merged(&old, &patch);
        let denied = denials(&policy, &old, &object);
        assert!(denied.iter().any(|m| m.contains(what)), "{patch} should be denied for its {what}: {denied:?}");
    }
}
