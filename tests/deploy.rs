//! The manifests in deploy/: they parse into their Kubernetes types and agree with the example
//! config.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use queue_autoscaler::config::Config;
use support::manifests::{self, find, kustomize, typed};

fn example_config() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    Config::parse(&text, Vec::new()).unwrap()
}

fn documents<T: serde::de::DeserializeOwned>(path: &str) -> Vec<T> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    manifests::documents(&text, path).iter().map(typed).collect()
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
    let (on_demand, twin) = (find(&target.workload), find(&spot.deployment));
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

#[test]
fn every_rendered_object_parses_into_its_kubernetes_type() {
    let objects = kustomize("deploy");
    let mut kinds: Vec<String> = objects.iter().map(manifests::parse_typed).collect();
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
    let objects = kustomize("deploy");
    let deployment: Deployment = typed(find(&objects, "Deployment", "queue-autoscaler"));
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2), "two replicas, one writer");
    let pod = manifests::check_hardened(&deployment);
    assert!(pod.affinity.as_ref().is_some_and(|a| a.pod_anti_affinity.is_some()));
    assert_eq!(manifests::config_map_of(&pod), "queue-autoscaler-config");
    // The Service, PDB, NetworkPolicy and anti-affinity select these pods.
    manifests::check_selectors(&objects, "queue-autoscaler");
}

#[test]
fn the_config_map_is_the_example_config_and_valid() {
    let objects = kustomize("deploy");
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
    let objects = kustomize("deploy");
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
        manifests::overlay("components: [\"{deploy}/components/namespaced\", \"{deploy}/components/pod-cost-only\"]\n");
    let mut kinds: Vec<String> = objects.iter().map(manifests::parse_typed).collect();
    kinds.sort();
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
    let base = selector(&kustomize("deploy"));
    assert_eq!(base, [("kubernetes.io/metadata.name".to_owned(), "monitoring".to_owned())].into());
    // The overlay patch the README shows, as written there.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let patch = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("kind: NetworkPolicy"))
        .expect("the README's NetworkPolicy patch");
    let patched = selector(&manifests::overlay(patch));
    assert_eq!(patched, [("kubernetes.io/metadata.name".to_owned(), "prometheus".to_owned())].into());
}

#[test]
fn the_statefulset_example_is_what_its_config_scales() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::Service;
    use queue_autoscaler::config::WorkloadKind;
    let path = "deploy/examples/airflow-statefulset.yaml";
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let objects = manifests::documents(&text, path);
    let set: StatefulSet = typed(find(&objects, "StatefulSet", "airflow-worker"));
    let service: Service = typed(find(&objects, "Service", "airflow-worker"));
    let toml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/airflow-statefulset.toml"))
            .unwrap();
    let env = [("AIRFLOW_DB_URL".to_owned(), "postgres://airflow@db/airflow".to_owned())];
    let config = Config::parse(&toml, env).unwrap_or_else(|e| panic!("airflow-statefulset.toml: {e}"));
    let target = &config.targets[0];
    assert_eq!(target.kind, WorkloadKind::StatefulSet);
    assert_eq!(Some(&target.workload), set.metadata.name.as_ref());
    assert_eq!(Some(&target.namespace), set.metadata.namespace.as_ref());
    assert!(target.busy.as_ref().is_some_and(|b| b.floor), "busy-aware, with the floor a StatefulSet needs");
    let spec = set.spec.unwrap();
    assert!(spec.replicas.is_none(), "replicas belong to queue-autoscaler");
    // Pod names `airflow-worker-N` resolve through the headless Service the set names: the FQDN
    // Airflow records as a task's hostname, whose first label is the pod's name.
    assert_eq!(spec.service_name.as_deref(), service.metadata.name.as_deref());
    assert_eq!(service.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"));
    let selector = spec.selector.match_labels.unwrap();
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "the selector finds the set's pods");
    assert!(spec.volume_claim_templates.is_some_and(|v| !v.is_empty()), "persistence: the chart's default");
}
