//! Kubernetes manifests as the tests read them: YAML documents as JSON values, `kubectl
//! kustomize`, each object parsed into its k8s-openapi type, and the checks the kustomize base and
//! the Helm chart share.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every YAML document of `text`, empty ones left out; `what` names the text in errors.
pub fn documents(text: &str, what: &str) -> Vec<Value> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    values.into_iter().filter(|v| !v.is_null()).collect()
}

/// The crate's `deploy/`, for overlays of it.
pub const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// `kubectl kustomize DIR` (relative to the crate root), with the real kubectl (Debian's
/// kubernetes-client, or any other).
pub fn kustomize(dir: &str) -> Vec<Value> {
    render(Path::new(&format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"))))
}

/// The objects kustomize renders for the kustomization in `dir`.
pub fn render(dir: &Path) -> Vec<Value> {
    let out = std::process::Command::new("kubectl").arg("kustomize").arg(dir).output().unwrap_or_else(|e| {
        panic!("kubectl is needed to render {} ({e}): apt-get install kubernetes-client", dir.display())
    });
    if !out.status.success() {
        let version = std::process::Command::new("kubectl").args(["version", "--client"]).output();
        let version = version.map(|v| String::from_utf8_lossy(&v.stdout).into_owned()).unwrap_or_default();
        panic!(
            "kubectl kustomize {}:\n{}\n(deploy/components need kustomize 3.7+, kubectl 1.21+; this is {version})",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    documents(&String::from_utf8_lossy(&out.stdout), &format!("kubectl kustomize {}", dir.display()))
}

/// An overlay of deploy/: `resources: [deploy/]` and, under it, `extra` (components, patches…).
/// Paths in `extra` may start with `{deploy}`.
pub fn overlay(extra: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    // kustomize takes no absolute paths: reach deploy/ from the overlay through the root.
    let up = "../".repeat(dir.path().components().count().saturating_sub(1));
    let deploy = format!("{up}{}", DEPLOY.trim_start_matches('/'));
    let text = format!("resources: [\"{deploy}\"]\n{}", extra.replace("{deploy}", &deploy));
    std::fs::write(dir.path().join("kustomization.yaml"), text).expect("write kustomization.yaml");
    render(dir.path())
}

/// The object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among the rendered objects"))
}

/// Every object of `kind`.
pub fn all<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| o["kind"] == kind)
}

/// `value` as its Kubernetes type.
pub fn typed<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{} {}: {e}", value["kind"], value["metadata"]["name"]))
}

/// Parses `object` into the k8s-openapi type of its kind (panics on any other kind) and returns
/// the kind.
pub fn parse_typed(object: &Value) -> String {
    use k8s_openapi::api::admissionregistration::v1 as admission;
    use k8s_openapi::api::{
        core::v1, networking::v1::NetworkPolicy, policy::v1::PodDisruptionBudget, rbac::v1 as rbac,
    };
    let kind = object["kind"].as_str().unwrap_or_else(|| panic!("an object without a kind: {object}")).to_owned();
    match kind.as_str() {
        "Namespace" => drop(typed::<v1::Namespace>(object)),
        "ServiceAccount" => drop(typed::<v1::ServiceAccount>(object)),
        "ConfigMap" => drop(typed::<v1::ConfigMap>(object)),
        "Service" => drop(typed::<v1::Service>(object)),
        "Deployment" => drop(typed::<Deployment>(object)),
        "ClusterRole" => drop(typed::<rbac::ClusterRole>(object)),
        "ClusterRoleBinding" => drop(typed::<rbac::ClusterRoleBinding>(object)),
        "Role" => drop(typed::<rbac::Role>(object)),
        "RoleBinding" => drop(typed::<rbac::RoleBinding>(object)),
        "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(object)),
        "NetworkPolicy" => drop(typed::<NetworkPolicy>(object)),
        "ValidatingAdmissionPolicy" => drop(typed::<admission::ValidatingAdmissionPolicy>(object)),
        "ValidatingAdmissionPolicyBinding" => drop(typed::<admission::ValidatingAdmissionPolicyBinding>(object)),
        // A CRD of the Prometheus Operator: no k8s-openapi type; check its shape by hand.
        "ServiceMonitor" => assert_eq!(object["spec"]["endpoints"][0]["port"], "metrics"),
        other => panic!("unexpected kind {other}"),
    }
    kind
}

/// (API group, resource, verb) of every rule of a Role or ClusterRole.
pub fn permissions(role: &Value) -> BTreeSet<(String, String, String)> {
    let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> = serde_json::from_value(role["rules"].clone())
        .unwrap_or_else(|e| panic!("{} {}: rules: {e}", role["kind"], role["metadata"]["name"]));
    let mut granted = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    granted
}

/// The Deployment's pod labels, after checking that every object meant to find its pods (the
/// metrics Service, PDB, NetworkPolicy, pod anti-affinity) selects them, and that the
/// ServiceMonitor finds the Service.
pub fn check_selectors(objects: &[Value], deployment: &str) -> serde_json::Map<String, Value> {
    let pods = find(objects, "Deployment", deployment);
    let labels = pods["spec"]["template"]["metadata"]["labels"].as_object().expect("pod labels").clone();
    let mut selectors = vec![("Deployment", &pods["spec"]["selector"]["matchLabels"])];
    for (kind, path) in [
        ("Service", "/spec/selector"),
        ("PodDisruptionBudget", "/spec/selector/matchLabels"),
        ("NetworkPolicy", "/spec/podSelector/matchLabels"),
    ] {
        selectors.extend(all(objects, kind).map(|o| (kind, o.pointer(path).unwrap_or(&Value::Null))));
    }
    let anti = "/spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm/labelSelector/matchLabels";
    selectors.extend(pods.pointer(anti).map(|s| ("pod anti-affinity", s)));
    for (kind, selector) in selectors {
        let selector = selector.as_object().unwrap_or_else(|| panic!("{kind}: no selector"));
        assert!(!selector.is_empty(), "{kind}: an empty selector selects everything");
        assert!(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{kind} {selector:?} selects the pods {labels:?}"
        );
    }
    for monitor in all(objects, "ServiceMonitor") {
        let wanted = monitor["spec"]["selector"]["matchLabels"].as_object().expect("ServiceMonitor selector");
        assert!(
            all(objects, "Service").any(|s| wanted.iter().all(|(k, v)| s["metadata"]["labels"].get(k) == Some(v))),
            "the ServiceMonitor finds the metrics Service"
        );
    }
    labels
}

/// The pod spec of the daemon's Deployment, after checking the hardening both the kustomize base
/// and the chart keep: non-root, seccomp, read-only root, no privilege escalation, no
/// capabilities, memory bounds, both probes, the lease identity, and the config file where the
/// ConfigMap is mounted.
pub fn check_hardened(deployment: &Deployment) -> PodSpec {
    let pod = deployment.spec.clone().and_then(|s| s.template.spec).expect("a pod template");
    let pod_security = pod.security_context.clone().expect("a pod security context");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.seccomp_profile.expect("seccomp").type_, "RuntimeDefault");
    let container = &pod.containers[0];
    let security = container.security_context.clone().expect("a container security context");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.and_then(|c| c.drop), Some(vec!["ALL".to_owned()]));
    let resources = container.resources.clone().expect("resources");
    assert!(resources.requests.unwrap().contains_key("memory") && resources.limits.unwrap().contains_key("memory"));
    assert_eq!(container.liveness_probe.clone().unwrap().http_get.unwrap().path.as_deref(), Some("/healthz"));
    assert_eq!(container.readiness_probe.clone().unwrap().http_get.unwrap().path.as_deref(), Some("/readyz"));
    let env: Vec<String> = container.env.clone().unwrap().into_iter().map(|e| e.name).collect();
    assert!(env.contains(&"POD_NAME".to_owned()) && env.contains(&"POD_NAMESPACE".to_owned()), "the lease identity");
    // The config path in the args is the ConfigMap's key, where the volume is mounted.
    let args = container.args.clone().unwrap();
    let config = &args[args.iter().position(|a| a == "--config").expect("--config") + 1];
    let mount = &container.volume_mounts.clone().unwrap()[0];
    assert_eq!(config, &format!("{}/config.toml", mount.mount_path));
    pod
}

/// The name of the ConfigMap mounted where the daemon reads its config.
pub fn config_map_of(pod: &PodSpec) -> String {
    let mount = &pod.containers[0].volume_mounts.clone().unwrap()[0];
    let volume = pod.volumes.clone().unwrap().into_iter().find(|v| v.name == mount.name).expect("the mounted volume");
    volume.config_map.expect("a ConfigMap volume").name
}
