use super::*;

const SOURCES: &str = r#"
[sources.db]
kind = "airflow"
url = "postgres://airflow@db/airflow?sslmode=verify-full"
"#;

fn config(daemon: &str, targets: &str) -> Config {
    let text = format!("{daemon}\n{SOURCES}\n{targets}");
    Config::parse(&text, [("POD_NAMESPACE".to_owned(), "ops".to_owned())]).unwrap()
}

fn target(name: &str, namespace: &str, extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nnamespace = \"{namespace}\"\ndeployment = \"{name}\"\nmax_replicas = 3\ntriggers = [{{ source = \"db\", per_replica = 1 }}]\n{extra}\n"
    )
}

fn identity() -> Identity {
    Identity { namespace: "ops".into(), service_account: "qa".into(), with_service_account: true }
}

fn rule(group: &'static str, resource: &str, names: &[&str], verbs: &[&'static str]) -> Rule {
    Rule {
        group,
        resource: resource.to_owned(),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        verbs: verbs.iter().copied().collect(),
    }
}

#[test]
fn a_namespace_gets_only_what_its_targets_use() {
    let spot = "[targets.spot]\ndeployment = \"a-spot\"\non_demand_base = 1\non_demand_percentage = 0\n";
    let targets = target("a", "team-a", &format!("protect_busy_workers = true\n{spot}"))
        + &target("b", "team-b", "")
        + &target("b2", "team-b", "");
    let roles = roles(&config("", &targets), &identity());
    let names: Vec<(&str, Option<&str>)> = roles.iter().map(|r| (r.name.as_str(), r.namespace.as_deref())).collect();
    assert_eq!(names, [("qa", Some("team-a")), ("qa", Some("team-b")), ("qa-nodes", None)]);
    assert_eq!(
        roles[0].rules,
        [
            rule("", "pods", &[], &["list", "patch", "watch"]),
            rule("apps", "deployments", &["a", "a-spot"], &["get"]),
            rule("apps", "deployments/scale", &["a", "a-spot"], &["patch"]),
            rule("events.k8s.io", "events", &[], &["create"]),
        ]
    );
    assert_eq!(
        roles[1].rules,
        [
            rule("apps", "deployments", &["b", "b2"], &["get"]),
            rule("apps", "deployments/scale", &["b", "b2"], &["patch"]),
            rule("events.k8s.io", "events", &[], &["create"]),
        ]
    );
    assert_eq!(roles[2].rules, [rule("", "nodes", &[], &["list", "watch"])]);
    assert!(roles[1].purpose.contains("targets b, b2"), "{}", roles[1].purpose);
}

#[test]
fn a_statefulset_target_gets_statefulsets_and_lists_pods_without_patching_them() {
    let statefulset = "[[targets]]\nname = \"s\"\nnamespace = \"airflow\"\nkind = \"StatefulSet\"\nstatefulset = \"airflow-worker\"\nmax_replicas = 3\ntriggers = [{ source = \"db\", per_replica = 1 }]\nprotect_busy_workers = true\n";
    let roles = roles(&config("", statefulset), &identity());
    assert_eq!(
        roles[0].rules,
        [
            rule("", "pods", &[], &["list"]),
            rule("apps", "statefulsets", &["airflow-worker"], &["get"]),
            rule("apps", "statefulsets/scale", &["airflow-worker"], &["patch"]),
            rule("events.k8s.io", "events", &[], &["create"]),
        ]
    );
}

#[test]
fn leader_election_adds_the_lease_role_in_its_namespace() {
    let daemon = "[daemon.leader_election]\nenabled = true\nlease_name = \"lock\"";
    let roles = roles(&config(daemon, &target("a", "ops", "")), &identity());
    let lease = roles.iter().find(|r| r.name == "qa-lease").expect("a lease Role");
    assert_eq!(lease.namespace.as_deref(), Some("ops"));
    assert_eq!(
        lease.rules,
        [
            rule("coordination.k8s.io", "leases", &[], &["create"]),
            rule("coordination.k8s.io", "leases", &["lock"], &["get", "update"]),
        ]
    );
    assert!(roles.iter().all(|r| r.namespace.is_some()), "no ClusterRole without a spot twin");
    let elsewhere = "[daemon.leader_election]\nenabled = true\nnamespace = \"locks\"";
    let roles = super::roles(&config(elsewhere, &target("a", "ops", "")), &identity());
    assert_eq!(roles.iter().find(|r| r.name == "qa-lease").unwrap().namespace.as_deref(), Some("locks"));
}

#[test]
fn manifests_bind_every_role_to_the_service_account() {
    let spot = "[targets.spot]\ndeployment = \"a-spot\"\non_demand_base = 1\non_demand_percentage = 0\n";
    let manifests = manifests(&config("", &target("a", "team-a", spot)), &identity());
    let kinds: Vec<&str> = manifests.iter().map(|m| m.object["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]);
    assert_eq!(manifests[0].object["metadata"], serde_json::json!({ "name": "qa", "namespace": "ops" }));
    for binding in [&manifests[2].object, &manifests[4].object] {
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{ "kind": "ServiceAccount", "name": "qa", "namespace": "ops" }])
        );
    }
    assert_eq!(manifests[2].object["roleRef"]["kind"], "Role");
    assert_eq!(manifests[4].object["roleRef"]["name"], "qa-nodes");
    assert!(manifests[3].object["metadata"].get("namespace").is_none(), "a ClusterRole has no namespace");
    let without = Identity { with_service_account: false, ..identity() };
    assert_eq!(super::manifests(&config("", &target("a", "team-a", "")), &without).len(), 2);
}
