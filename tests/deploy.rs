//! The manifests in deploy/: they parse into their Kubernetes types and agree with the example
//! config.

mod support;

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use queue_autoscaler::config::Config;
use support::kustomize;

fn example_config() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    Config::parse(&text, Vec::new()).unwrap()
}

fn documents<T: serde::de::DeserializeOwned>(path: &str) -> Vec<T> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let values: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    values.into_iter().map(|v| serde_json::from_value(v).unwrap_or_else(|e| panic!("{path}: {e}"))).collect()
}

#[test]
fn the_spot_example_is_the_pair_the_example_config_scales() {
    let deployments: Vec<Deployment> = documents("deploy/examples/spot-workers.yaml");
    let config = example_config();
    let target = &config.targets[0];
    let spot = target.spot.as_ref().expect("the example target has a spot twin");
    let find = |name: &str| {
        deployments.iter().find(|d| d.metadata.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no {name}"))
    };
    let (on_demand, twin) = (find(&target.deployment), find(&spot.deployment));
    for d in [on_demand, twin] {
        assert_eq!(d.metadata.namespace.as_deref(), Some(target.namespace.as_str()));
        assert!(d.spec.as_ref().unwrap().replicas.is_none(), "replicas belong to queue-autoscaler");
    }
    let pod = |d: &Deployment| d.spec.clone().unwrap().template.spec.unwrap();
    let capacity = |d: &Deployment| pod(d).node_selector.unwrap()["karpenter.sh/capacity-type"].clone();
    assert_eq!(capacity(on_demand), "on-demand");
    assert_eq!(capacity(twin), "spot");
    assert!(pod(twin).tolerations.unwrap().iter().any(|t| t.value.as_deref() == Some("spot")));
    assert_eq!(pod(on_demand).containers, pod(twin).containers, "same workers apart from placement");
    // Each Deployment's selector matches its own pods and not the other's.
    for (d, other) in [(on_demand, twin), (twin, on_demand)] {
        let selector = d.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();
        let labels = |d: &Deployment| d.spec.clone().unwrap().template.metadata.unwrap().labels.unwrap();
        assert!(selector.iter().all(|(k, v)| labels(d).get(k) == Some(v)));
        assert!(!selector.iter().all(|(k, v)| labels(other).get(k) == Some(v)));
    }
}

/// `kubectl kustomize deploy/`.
fn rendered() -> Vec<serde_json::Value> {
    kustomize::render(Path::new(kustomize::DEPLOY))
}

/// Parses each object into its Kubernetes type; returns the kinds, sorted.
fn parse_all(objects: &[serde_json::Value]) -> Vec<String> {
    use k8s_openapi::api::admissionregistration::v1 as admission;
    use k8s_openapi::api::{
        core::v1, networking::v1::NetworkPolicy, policy::v1::PodDisruptionBudget, rbac::v1 as rbac,
    };
    let mut kinds: Vec<String> = Vec::new();
    for object in objects {
        let kind = object["kind"].as_str().unwrap().to_owned();
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
        kinds.push(kind);
    }
    kinds.sort();
    kinds
}

fn find<'a>(objects: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered deploy/"))
}

fn typed<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{}: {e}", value["kind"]))
}

#[test]
fn every_rendered_object_parses_into_its_kubernetes_type() {
    let objects = rendered();
    let kinds = parse_all(&objects);
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ];
    assert_eq!(kinds, expected);
    for object in objects
        .iter()
        .filter(|o| o["kind"] != "Namespace" && o["kind"] != "ClusterRole" && o["kind"] != "ClusterRoleBinding")
    {
        assert_eq!(object["metadata"]["namespace"], "queue-autoscaler", "{}", object["kind"]);
    }
}

#[test]
fn the_deployment_is_hardened_probed_and_spread() {
    let objects = rendered();
    let deployment: Deployment = typed(find(&objects, "Deployment", "queue-autoscaler"));
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2), "two replicas, one writer");
    let pod = spec.template.spec.unwrap();
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let container = &pod.containers[0];
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
    let resources = container.resources.clone().unwrap();
    assert!(resources.requests.unwrap().contains_key("memory") && resources.limits.unwrap().contains_key("memory"));
    assert_eq!(container.liveness_probe.clone().unwrap().http_get.unwrap().path.as_deref(), Some("/healthz"));
    assert_eq!(container.readiness_probe.clone().unwrap().http_get.unwrap().path.as_deref(), Some("/readyz"));
    assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
    let env: Vec<String> = container.env.clone().unwrap().into_iter().map(|e| e.name).collect();
    assert!(env.contains(&"POD_NAME".to_owned()) && env.contains(&"POD_NAMESPACE".to_owned()), "the lease identity");
    // The config path in the args is the ConfigMap's key, where the volume is mounted.
    let args = container.args.clone().unwrap();
    let config = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let mount = &container.volume_mounts.clone().unwrap()[0];
    assert_eq!(config, &format!("{}/config.toml", mount.mount_path));
    let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == mount.name).unwrap();
    assert_eq!(volume.config_map.unwrap().name, "queue-autoscaler-config");
    // The Service, PDB and NetworkPolicy select these pods.
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    for (kind, name, path) in [
        ("Service", "queue-autoscaler-metrics", "/spec/selector"),
        ("PodDisruptionBudget", "queue-autoscaler", "/spec/selector/matchLabels"),
        ("NetworkPolicy", "queue-autoscaler", "/spec/podSelector/matchLabels"),
    ] {
        let selector = find(&objects, kind, name).pointer(path).unwrap().as_object().unwrap().clone();
        assert!(!selector.is_empty());
        assert!(
            selector.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()),
            "{kind} selects the pods"
        );
    }
}

#[test]
fn the_config_map_is_the_example_config_and_valid() {
    let objects = rendered();
    let config_map = find(&objects, "ConfigMap", "queue-autoscaler-config");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    let copy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.toml")).unwrap();
    assert_eq!(
        copy, example,
        "deploy/config.toml must stay a copy of config.example.toml: cp config.example.toml deploy/config.toml"
    );
    assert_eq!(config_map["data"]["config.toml"].as_str(), Some(example.as_str()));
    let env = [("POD_NAMESPACE".to_owned(), "queue-autoscaler".to_owned())];
    let config = Config::parse(&example, env).unwrap();
    assert!(config.daemon.leader_election.is_some(), "two replicas need leader election");
}

#[test]
fn the_dashboard_config_map_carries_the_dashboard_for_the_sidecar() {
    let objects = rendered();
    let config_map = find(&objects, "ConfigMap", "queue-autoscaler-dashboard");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/queue-autoscaler.json")).unwrap();
    assert_eq!(
        config_map["data"]["queue-autoscaler.json"].as_str(),
        Some(file.as_str()),
        "rerun scripts/dashboard-configmap.sh"
    );
}

#[test]
fn the_components_render_and_parse() {
    let objects =
        kustomize::overlay("components: [\"{deploy}/components/namespaced\", \"{deploy}/components/pod-cost-only\"]\n");
    let kinds = parse_all(&objects);
    for kind in ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Role", "ClusterRole"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let cluster_roles: Vec<&serde_json::Value> =
        objects.iter().filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding").collect();
    assert!(cluster_roles.iter().all(|o| o["metadata"]["name"] == "queue-autoscaler-nodes"), "{cluster_roles:#?}");
    for role in objects.iter().filter(|o| o["kind"] == "Role") {
        assert!(role["metadata"]["namespace"].is_string(), "every Role has its namespace: {role}");
    }
}

#[test]
fn the_network_policy_admits_the_monitoring_namespace_and_the_readmes_patch_changes_it() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let selector = |objects: &[serde_json::Value]| {
        let policy: NetworkPolicy = typed(find(objects, "NetworkPolicy", "queue-autoscaler"));
        let ingress = policy.spec.unwrap().ingress.unwrap();
        assert_eq!(ingress.len(), 1, "one rule");
        let port = ingress[0].ports.as_ref().unwrap()[0].port.clone();
        assert_eq!(port, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090)));
        let from = ingress[0].from.clone().unwrap();
        assert_eq!(from.len(), 1, "one peer");
        assert!(from[0].pod_selector.is_none() && from[0].ip_block.is_none(), "a namespace, nothing else");
        from[0].namespace_selector.clone().unwrap().match_labels.unwrap()
    };
    let base = selector(&rendered());
    assert_eq!(base, [("kubernetes.io/metadata.name".to_owned(), "monitoring".to_owned())].into());
    // The overlay patch the README shows, as written there.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let patch = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("kind: NetworkPolicy"))
        .expect("the README's NetworkPolicy patch");
    let patched = selector(&kustomize::overlay(patch));
    assert_eq!(patched, [("kubernetes.io/metadata.name".to_owned(), "prometheus".to_owned())].into());
}
