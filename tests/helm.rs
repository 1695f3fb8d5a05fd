//! The Helm chart in deploy/helm/queue-autoscaler, linted and rendered by Helm v4 itself: the
//! PyPI package helm-python-sdk bundles Helm's Go code, and tests/support/helm_render.py drives
//! it (scripts/test.sh installs it). Strict lint is clean; every object parses into its
//! Kubernetes type; with default values the chart renders what `kubectl kustomize deploy/`
//! renders; the config it renders passes `queue-autoscaler validate`; the schema refuses bad
//! values; and only what the daemon cannot hot-reload rolls the pods.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use support::manifests::{self, all, find, kustomize, permissions, typed};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/queue-autoscaler");
const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/helm_render.py");
/// The release name and namespace: those of the kustomize base, so that names compare.
const RELEASE: &str = "queue-autoscaler";

/// Runs the helper with `python` (flags included) and `args`: its JSON answer.
fn helper(python: &[&str], args: &[&str]) -> Result<Value, String> {
    let out = Command::new("python3")
        .args(python)
        .arg(HELPER)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to run Helm ({e}): apt-get install python3"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("{HELPER} {args:?} failed ({}):\n{stderr}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{HELPER}: not JSON ({e}):\n{stderr}"))
}

/// Runs `helm_render.py COMMAND ARGS… [VALUES]` with `values` (YAML; none when empty) as the file.
fn helm(command: &str, args: &[&str], values: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).expect("write values");
    let mut all_args = vec![command, CHART];
    all_args.extend(args);
    if !values.is_empty() {
        all_args.push(file.to_str().expect("a UTF-8 temp path"));
    }
    helper(&[], &all_args).unwrap_or_else(|e| panic!("{e}"))
}

/// `helm lint --strict` against Kubernetes `kube_version`.
fn lint(values: &str, kube_version: &str) -> Value {
    helm("lint", &[kube_version], values)
}

/// `helm template` as release RELEASE in namespace RELEASE: every object (NOTES.txt left out),
/// or Helm's refusal.
fn render(values: &str) -> Result<Vec<Value>, String> {
    let answer = helm("render", &[RELEASE, RELEASE], values);
    if let Some(error) = answer.get("error") {
        return Err(format!("{}: {}", error["kind"].as_str().unwrap_or("?"), error["message"].as_str().unwrap_or("?")));
    }
    let files: BTreeMap<String, String> = serde_json::from_value(answer["manifests"].clone()).expect("manifests");
    Ok(files
        .iter()
        .filter(|(path, _)| !path.ends_with("NOTES.txt"))
        .flat_map(|(path, text)| manifests::documents(text, path))
        .collect())
}

/// Helm's refusal of `values`.
fn refused(values: &str) -> String {
    match render(values) {
        Ok(objects) => panic!("helm accepted these values ({} objects):\n{values}", objects.len()),
        Err(error) => error,
    }
}

fn render_ok(values: &str) -> Vec<Value> {
    render(values).unwrap_or_else(|e| panic!("helm refused the values:\n{e}\n{values}"))
}

/// The values file with every option set away from its default.
fn every_option() -> String {
    std::fs::read_to_string(format!("{CHART}/ci/every-option-values.yaml")).expect("ci/every-option-values.yaml")
}

/// Values that set the config file to `toml` (JSON is YAML).
fn with_config(toml: &str) -> String {
    json!({"config": {"toml": toml}}).to_string()
}

fn example_config() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).expect("config.example.toml")
}

fn deployment(objects: &[Value]) -> Deployment {
    typed(all(objects, "Deployment").next().expect("a Deployment"))
}

/// The config file the Deployment mounts, as rendered.
fn mounted_config(objects: &[Value]) -> String {
    let name = manifests::config_map_of(&deployment(objects).spec.unwrap().template.spec.unwrap());
    find(objects, "ConfigMap", &name)["data"]["config.toml"].as_str().expect("config.toml").to_owned()
}

fn restart_checksum(objects: &[Value]) -> Option<String> {
    let annotations = deployment(objects).spec.unwrap().template.metadata.unwrap().annotations.unwrap_or_default();
    annotations.get("checksum/restart-config").cloned()
}

#[test]
fn without_helm_python_sdk_the_test_fails_saying_how_to_install_it() {
    // `python3 -S` leaves site-packages out, as on a machine where the package is not installed.
    let error = helper(&["-S"], &["lint", CHART, "v1.33.0"]).expect_err("no helm_python without site-packages");
    assert!(error.contains("exit status: 3") && error.contains("pip install 'helm-python-sdk"), "{error}");
}

#[test]
fn strict_lint_is_clean_for_the_defaults_and_for_every_option() {
    for (what, values) in [("the defaults", String::new()), ("every option", every_option())] {
        // The oldest Kubernetes the chart supports (kubeVersion, for policy/v1) and a current one.
        for kube_version in ["v1.21.0", "v1.33.0"] {
            let report = lint(&values, kube_version);
            let findings: Vec<&Value> =
                report["messages"].as_array().unwrap().iter().filter(|m| m["severity"].as_i64() >= Some(2)).collect();
            assert!(findings.is_empty(), "helm lint --strict, {what}, Kubernetes {kube_version}: {findings:#?}");
            assert_eq!(report["errors"], json!([]), "helm lint --strict, {what}, Kubernetes {kube_version}");
        }
    }
}

#[test]
fn every_rendered_object_parses_into_its_kubernetes_type_and_finds_the_pods() {
    for (what, values) in [
        ("the defaults", String::new()),
        ("every option", every_option()),
        ("namespaced RBAC", "rbac: {mode: namespaced}".to_owned()),
    ] {
        let objects = render_ok(&values);
        let kinds: BTreeSet<String> = objects.iter().map(manifests::parse_typed).collect();
        assert!(kinds.contains("Deployment") && kinds.contains("ConfigMap"), "{what}: {kinds:?}");
        let deployment = deployment(&objects);
        manifests::check_hardened(&deployment);
        manifests::check_selectors(&objects, deployment.metadata.name.as_deref().unwrap());
        for object in objects.iter().filter(|o| !o["kind"].as_str().unwrap().starts_with("Cluster")) {
            assert!(object["metadata"]["namespace"].is_string(), "{what}: {} has a namespace", object["kind"]);
        }
    }
}

/// (kind, namespace, name) of every object.
fn identities(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    objects
        .iter()
        .map(|o| (text(&o["kind"]), text(&o["metadata"]["namespace"]), text(&o["metadata"]["name"])))
        .collect()
}

#[test]
fn with_default_values_the_chart_renders_what_kustomize_renders() {
    let chart = render_ok("");
    // Helm leaves the release namespace to `--create-namespace`.
    let base: Vec<Value> = kustomize("deploy").into_iter().filter(|o| o["kind"] != "Namespace").collect();
    assert_eq!(identities(&chart), identities(&base), "the chart and deploy/ render different objects");
    for object in &base {
        let (kind, name) = (object["kind"].as_str().unwrap(), object["metadata"]["name"].as_str().unwrap());
        let ours = find(&chart, kind, name);
        let same = |pointer: &str| {
            assert_eq!(ours.pointer(pointer), object.pointer(pointer), "{kind} {name}: {pointer} differs from deploy/");
        };
        match kind {
            "ClusterRole" | "Role" => assert_eq!(permissions(ours), permissions(object), "{kind} {name}: rules"),
            "ClusterRoleBinding" | "RoleBinding" => {
                same("/roleRef");
                same("/subjects");
            }
            "ServiceAccount" => same("/automountServiceAccountToken"),
            "ConfigMap" => same("/data"),
            "Service" => same("/spec/ports"),
            "ServiceMonitor" => same("/spec/endpoints"),
            "PodDisruptionBudget" => same("/spec/minAvailable"),
            "NetworkPolicy" => compare_network_policies(ours, object),
            "Deployment" => compare_deployments(ours, object),
            other => panic!("{other} {name}: no comparison with the chart yet; add one"),
        }
    }
    let image = format!(":{}", env!("CARGO_PKG_VERSION"));
    let container = &find(&chart, "Deployment", RELEASE)["spec"]["template"]["spec"]["containers"][0];
    assert!(container["image"].as_str().unwrap().ends_with(&image), "appVersion is the crate's version");
}

fn compare_deployments(ours: &Value, base: &Value) {
    for pointer in [
        "/spec/replicas",
        "/spec/template/spec/serviceAccountName",
        "/spec/template/spec/securityContext",
        "/spec/template/spec/volumes",
    ] {
        assert_eq!(ours.pointer(pointer), base.pointer(pointer), "Deployment: {pointer} differs from deploy/");
    }
    // The whole container (image, args, env, ports, probes, resources, security context, mounts),
    // less the pull policy the chart sets explicitly.
    let mut container = ours["spec"]["template"]["spec"]["containers"].clone();
    container[0].as_object_mut().unwrap().remove("imagePullPolicy");
    assert_eq!(
        container, base["spec"]["template"]["spec"]["containers"],
        "Deployment: the container differs from deploy/"
    );
    let anti = "/spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/weight";
    assert_eq!(ours.pointer(anti), base.pointer(anti), "Deployment: anti-affinity");
}

fn compare_network_policies(ours: &Value, base: &Value) {
    for pointer in ["/spec/policyTypes", "/spec/ingress/0/ports"] {
        assert_eq!(ours.pointer(pointer), base.pointer(pointer), "NetworkPolicy: {pointer} differs from deploy/");
    }
    // The chart admits only the monitoring namespace. A base that admits every source (no
    // `from`) is wider and predates that rule; a base that names peers must name the chart's.
    let from = "/spec/ingress/0/from";
    if base.pointer(from).is_some() {
        assert_eq!(ours.pointer(from), base.pointer(from), "NetworkPolicy: who may scrape differs from deploy/");
    }
}

#[test]
fn by_default_only_the_monitoring_namespace_reaches_the_metrics_port() {
    let objects = render_ok("");
    let policy = find(&objects, "NetworkPolicy", RELEASE);
    let monitoring = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]);
    assert_eq!(policy["spec"]["ingress"], json!([{"ports": [{"port": 9090, "protocol": "TCP"}], "from": monitoring}]));
    // `from: []` admits every source on that port, and nothing else.
    let open = render_ok("networkPolicy: {from: []}");
    assert_eq!(
        find(&open, "NetworkPolicy", RELEASE)["spec"]["ingress"],
        json!([{"ports": [{"port": 9090, "protocol": "TCP"}]}])
    );
}

/// Runs `queue-autoscaler validate` on `config` with `env`.
fn validate(config: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).expect("write config");
    support::daemon::run(&["validate", "--config", path.to_str().unwrap()], None, env)
}

#[test]
fn the_config_the_chart_renders_passes_validate() {
    let defaults = mounted_config(&render_ok(""));
    assert_eq!(defaults, example_config(), "by default the chart ships config.example.toml (files/config.toml)");
    let out = validate(&defaults, &[("POD_NAMESPACE", RELEASE)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Every option: the pod's own literal variables, and the Secret's keys that the config names.
    let objects = render_ok(&every_option());
    let container = deployment(&objects).spec.unwrap().template.spec.unwrap().containers.remove(0);
    assert_eq!(container.env_from.unwrap()[0].secret_ref.clone().unwrap().name, "queue-autoscaler-sources");
    let literal: Vec<(String, String)> =
        container.env.unwrap().into_iter().filter_map(|e| Some((e.name, e.value?))).collect();
    let mut env: Vec<(&str, &str)> = literal.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("POD_NAMESPACE", RELEASE));
    let config = mounted_config(&objects);
    let out = validate(&config, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("sources.celery.url_env"),
        "the URLs come from the Secret: {stderr}"
    );
    env.extend([
        ("CELERY_BROKER_URL", "redis://redis.data:6379/0"),
        ("AIRFLOW_DB_URL", "postgres://airflow@db/airflow"),
    ]);
    let out = validate(&config, &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (2 sources, 2 targets)"));
}

#[test]
fn values_that_break_the_schema_are_refused_naming_the_key() {
    for (values, key, rule) in [
        ("replicaCount: \"2\"", "/replicaCount", "got string, want integer"),
        ("rbac: {mode: everywhere}", "/rbac/mode", "value must be one of 'cluster', 'namespaced'"),
    ] {
        let error = refused(values);
        assert!(error.starts_with("HelmValuesError") && error.contains(key) && error.contains(rule), "{error}");
        let report = lint(values, "v1.33.0");
        let errors = report["errors"].to_string();
        assert!(errors.contains(key) && errors.contains(rule), "lint: {report:#}");
    }
}

#[test]
fn only_listen_and_leader_election_change_the_restart_checksum() {
    let example = example_config();
    let edited = |from: &str, to: &str| {
        assert!(example.contains(from), "config.example.toml has no {from}");
        render_ok(&with_config(&example.replacen(from, to, 1)))
    };
    let original = render_ok("");
    let checksum = restart_checksum(&original).expect("a checksum of the restart-only keys");
    assert_eq!(checksum.len(), 64, "a sha256: {checksum}");
    for (from, to) in [("interval = \"15s\"", "interval = \"30s\""), ("max_replicas = 20", "max_replicas = 25")] {
        let objects = edited(from, to);
        assert_ne!(mounted_config(&objects), mounted_config(&original));
        assert_eq!(restart_checksum(&objects).as_ref(), Some(&checksum), "{to} is hot-reloaded: no rollout");
    }
    for (from, to) in [
        ("listen = \"0.0.0.0:9090\"", "listen = \"[::]:9090\""),
        ("lease_duration = \"15s\"", "lease_duration = \"20s\""),
    ] {
        assert_ne!(restart_checksum(&edited(from, to)).as_ref(), Some(&checksum), "{to} needs a restart: a rollout");
    }
}

#[test]
fn the_chart_refuses_values_that_contradict_its_config() {
    for (values, says) in [
        ("leaderElection: {enabled: false}".to_owned(), "replicaCount is 2 but leaderElection.enabled is false"),
        (
            "{replicaCount: 1, leaderElection: {enabled: false}}".to_owned(),
            "leaderElection.enabled is false but the config's [daemon.leader_election] enabled is true",
        ),
        (
            "metrics: {port: 9100}".to_owned(),
            "the config's daemon.listen \"0.0.0.0:9090\" does not use metrics.port 9100",
        ),
        (with_config("[daemon\nlisten = 1"), "config.toml is not valid TOML"),
    ] {
        let error = refused(&values);
        assert!(error.contains(says), "{values}: {error}");
    }
}

/// The (namespace → permissions) of every Role named `name`.
fn roles(objects: &[Value], name: &str) -> BTreeMap<String, BTreeSet<(String, String, String)>> {
    all(objects, "Role")
        .filter(|r| r["metadata"]["name"] == name)
        .map(|r| (r["metadata"]["namespace"].as_str().unwrap().to_owned(), permissions(r)))
        .collect()
}

#[test]
fn namespaced_rbac_grants_the_same_rules_in_each_target_namespace_and_nodes_apart() {
    let cluster_wide = permissions(find(&render_ok(""), "ClusterRole", RELEASE));
    let (nodes, in_namespaces): (BTreeSet<_>, BTreeSet<_>) = cluster_wide.into_iter().partition(|p| p.1 == "nodes");
    assert!(!nodes.is_empty() && !in_namespaces.is_empty());

    // Without rbac.namespaces: the namespaces of the config's targets.
    let objects = render_ok("rbac: {mode: namespaced}");
    let namespaces: BTreeMap<_, _> =
        ["airflow", "data", "streams"].map(|ns| (ns.to_owned(), in_namespaces.clone())).into_iter().collect();
    assert_eq!(roles(&objects, RELEASE), namespaces);
    for binding in all(&objects, "RoleBinding").filter(|b| b["metadata"]["name"] == RELEASE) {
        assert_eq!(binding["roleRef"]["name"], RELEASE);
        assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE}]));
    }
    let cluster_roles: Vec<&Value> = all(&objects, "ClusterRole").collect();
    assert_eq!(cluster_roles.len(), 1, "only nodes are cluster-wide");
    assert_eq!(cluster_roles[0]["metadata"]["name"], "queue-autoscaler-nodes");
    assert_eq!(permissions(cluster_roles[0]), nodes);
    let lease = roles(&objects, "queue-autoscaler-leader-election");
    assert_eq!(lease.keys().collect::<Vec<_>>(), [RELEASE], "the Lease stays in the release namespace");

    // Given namespaces, and no spot targets: nothing cluster-wide at all.
    let objects = render_ok("rbac: {mode: namespaced, namespaces: [data], nodes: false}");
    assert_eq!(roles(&objects, RELEASE).into_keys().collect::<Vec<_>>(), ["data"]);
    assert_eq!(all(&objects, "ClusterRole").chain(all(&objects, "ClusterRoleBinding")).count(), 0);
}

#[test]
fn the_lease_role_follows_the_configs_lease_namespace() {
    let config = example_config().replacen("enabled = true", "enabled = true\nnamespace = \"platform\"", 1);
    let objects = render_ok(&with_config(&config));
    assert_eq!(roles(&objects, "queue-autoscaler-leader-election").into_keys().collect::<Vec<_>>(), ["platform"]);
    let binding = all(&objects, "RoleBinding").find(|b| b["metadata"]["name"] == "queue-autoscaler-leader-election");
    assert_eq!(binding.unwrap()["metadata"]["namespace"], "platform");
}

#[test]
fn an_existing_config_map_is_mounted_as_given_without_a_checksum() {
    let objects = render_ok("config: {existingConfigMap: my-config}");
    let pod = deployment(&objects).spec.unwrap().template.spec.unwrap();
    assert_eq!(manifests::config_map_of(&pod), "my-config");
    assert!(all(&objects, "ConfigMap").all(|c| c["metadata"]["name"] != "queue-autoscaler-config"));
    assert_eq!(restart_checksum(&objects), None, "the chart cannot read a ConfigMap it does not render");
    // Nor the targets' namespaces then: namespaced RBAC needs them named.
    let error = refused("{config: {existingConfigMap: my-config}, rbac: {mode: namespaced}}");
    assert!(error.contains("set rbac.namespaces"), "{error}");
}

#[test]
fn every_option_reaches_its_object() {
    let objects = render_ok(&every_option());
    let deployment = find(&objects, "Deployment", "scaler");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example.com/platform/queue-autoscaler:0.1.0-rc1");
    assert_eq!(container["ports"], json!([{"name": "metrics", "containerPort": 9100}]));
    assert!(!container["args"].as_array().unwrap().contains(&json!("--log-json")), "logJson: false");
    assert_eq!(pod["serviceAccountName"], "scaler-sa");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "registry-credentials"}]));
    assert_eq!(find(&objects, "Service", "scaler-metrics")["spec"]["ports"][0]["port"], 9100);
    assert_eq!(find(&objects, "NetworkPolicy", "scaler")["spec"]["ingress"][0]["ports"][0]["port"], 9100);
    assert_eq!(find(&objects, "PodDisruptionBudget", "scaler")["spec"]["minAvailable"], 2);
    assert_eq!(find(&objects, "ServiceMonitor", "scaler")["metadata"]["labels"]["release"], "kube-prometheus-stack");
    assert_eq!(find(&objects, "ConfigMap", "scaler-dashboard")["metadata"]["namespace"], "monitoring");
    assert_eq!(roles(&objects, "scaler").into_keys().collect::<Vec<_>>(), ["airflow", "data"]);
    let account = find(&objects, "ServiceAccount", "scaler-sa");
    assert!(account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_string());
    // One replica: no PodDisruptionBudget, which would block every node drain.
    let single = render_ok("replicaCount: 1\nleaderElection: {enabled: true}");
    assert_eq!(all(&single, "PodDisruptionBudget").count(), 0);
}
