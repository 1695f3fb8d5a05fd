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
