//! The manifests in deploy/: they parse into their Kubernetes types and agree with the example
//! config.

use k8s_openapi::api::apps::v1::Deployment;
use queue_autoscaler::config::Config;

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

/// `kubectl kustomize deploy/`, with the real kubectl (Debian's kubernetes-client, or any other).
fn rendered() -> Vec<serde_json::Value> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy")])
        .output()
        .unwrap_or_else(|e| panic!("kubectl is needed to render deploy/ ({e}): apt-get install kubernetes-client"));
    assert!(out.status.success(), "kubectl kustomize deploy/ failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("rendered YAML")
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
    use k8s_openapi::api::{
        core::v1, networking::v1::NetworkPolicy, policy::v1::PodDisruptionBudget, rbac::v1 as rbac,
    };
    let objects = rendered();
    let mut kinds: Vec<String> = Vec::new();
    for object in &objects {
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
            // A CRD of the Prometheus Operator: no k8s-openapi type; check its shape by hand.
            "ServiceMonitor" => assert_eq!(object["spec"]["endpoints"][0]["port"], "metrics"),
            other => panic!("unexpected kind {other}"),
        }
        kinds.push(kind);
    }
    kinds.sort();
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
