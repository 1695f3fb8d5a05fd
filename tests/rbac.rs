//! RBAC grants exactly the calls the daemon makes, in scope as well as in verbs.
//!
//! A daemon with targets in two namespaces — `team-a` with every feature (spot twin, busy-aware
//! scale-in), `team-b` with none — and leader election in its own namespace runs against the test
//! API server, which records every request. Each request becomes what RBAC authorizes (namespace,
//! API group, resource, verb, name), and then:
//! - what `queue-autoscaler rbac` prints for that config allows every request, and each of its
//!   rules' verbs is used by one (least privilege, by namespace and by name);
//! - so does the cluster-wide RBAC of `kubectl kustomize deploy/`;
//! - the daemon calls the API only in `team-a`, `team-b`, its own namespace, and for Nodes.
//!
//! And the namespaced component of deploy/ is what `rbac` prints for deploy/config.toml.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;
use support::airflow::{Backend, Schema, TestDb};
use support::apiserver::{ApiServer, Calls, Change, Request};
use support::daemon::{Daemon, cycles_pass, free_port, run};
use support::eventually;
use support::manifests::{self, DEPLOY};
use support::toml::Toml;

const WAIT: Duration = Duration::from_secs(30);
const OWN_NAMESPACE: &str = "qa-system";

/// One API request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    namespace: Option<String>,
    group: String,
    /// With the subresource: `deployments/scale`.
    resource: String,
    verb: String,
    name: Option<String>,
}

fn call(request: &Request) -> Call {
    let (path, query) = (request.path.as_str(), request.query.as_str());
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/… (core) or /apis/GROUP/VERSION/…; then optional namespaces/NS; then resource[/name[/sub]].
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not an API path: {path}"),
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] => (Some((*namespace).to_owned()), rest),
        rest => (None, rest),
    };
    let (resource, name) = match rest {
        [resource] => (resource.to_string(), None),
        [resource, name] => (resource.to_string(), Some((*name).to_owned())),
        [resource, name, sub] => (format!("{resource}/{sub}"), Some((*name).to_owned())),
        _ => panic!("unexpected path {path}"),
    };
    let watch = query.split('&').any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (request.method.as_str(), name.is_some(), watch) {
        ("GET", _, true) => "watch",
        ("GET", true, false) => "get",
        ("GET", false, false) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", _, _) => "delete",
        (method, _, _) => panic!("unexpected method {method}"),
    };
    Call { namespace, group: group.to_owned(), resource, verb: verb.to_owned(), name }
}

/// A rule granted to the ServiceAccount: in one namespace (a RoleBinding) or everywhere (a
/// ClusterRoleBinding).
#[derive(Debug)]
struct Grant {
    namespace: Option<String>,
    rule: PolicyRule,
}

impl Grant {
    /// RBAC's rule matching: group, resource, verb, and the name when the rule lists names
    /// (`list`, `watch` and `create` name no object, so such a rule never allows them).
    fn allows(&self, call: &Call) -> bool {
        let has = |list: &Option<Vec<String>>, value: &str| list.iter().flatten().any(|v| v == value || v == "*");
        let in_scope = self.namespace.is_none() || self.namespace == call.namespace;
        let named = match &self.rule.resource_names {
            Some(names) if !names.is_empty() => call.name.as_ref().is_some_and(|n| names.contains(n)),
            _ => true,
        };
        in_scope
            && named
            && has(&self.rule.api_groups, &call.group)
            && has(&self.rule.resources, &call.resource)
            && self.rule.verbs.iter().any(|v| v == &call.verb || v == "*")
    }
}

/// The rules the objects grant to ServiceAccount `namespace/name`, through their bindings.
fn grants(objects: &[Value], account: (&str, &str)) -> Vec<Grant> {
    let of_kind = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);
    let binds_account = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects
            .iter()
            .flatten()
            .any(|s| s.kind == "ServiceAccount" && s.name == account.1 && s.namespace.as_deref() == Some(account.0))
    };
    let mut grants = Vec::new();
    for binding in of_kind("RoleBinding").map(typed::<RoleBinding>).filter(|b| binds_account(&b.subjects)) {
        let namespace = binding.metadata.namespace.clone();
        let role = of_kind("Role")
            .map(typed::<Role>)
            .find(|r| r.metadata.name.as_ref() == Some(&binding.role_ref.name) && r.metadata.namespace == namespace)
            .unwrap_or_else(|| panic!("RoleBinding {:?} names no Role in its namespace", binding.metadata.name));
        grants.extend(role.rules.into_iter().flatten().map(|rule| Grant { namespace: namespace.clone(), rule }));
    }
    for binding in of_kind("ClusterRoleBinding").map(typed::<ClusterRoleBinding>).filter(|b| binds_account(&b.subjects))
    {
        let role = of_kind("ClusterRole")
            .map(typed::<ClusterRole>)
            .find(|r| r.metadata.name.as_ref() == Some(&binding.role_ref.name))
            .unwrap_or_else(|| panic!("ClusterRoleBinding {:?} names no ClusterRole", binding.metadata.name));
        grants.extend(role.rules.into_iter().flatten().map(|rule| Grant { namespace: None, rule }));
    }
    grants
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{}: {e}", value["kind"]))
}

/// Every call is allowed, and every verb of every rule is used by a call it allows.
fn assert_exactly(grants: &[Grant], calls: &BTreeSet<Call>, what: &str) {
    assert!(!grants.is_empty(), "{what}: nothing is granted");
    let refused: Vec<&Call> = calls.iter().filter(|c| !grants.iter().any(|g| g.allows(c))).collect();
    assert!(refused.is_empty(), "{what} does not allow these calls: {refused:#?}");
    for grant in grants {
        for verb in &grant.rule.verbs {
            let used = calls.iter().any(|c| &c.verb == verb && grant.allows(c));
            assert!(
                used,
                "{what} grants {verb} {:?} in {:?}, never used (least privilege)",
                grant.rule, grant.namespace
            );
        }
    }
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).expect("YAML").into_iter().filter(|v| !v.is_null()).collect()
}

/// What `queue-autoscaler rbac` prints for the config at `path`.
fn rbac_command(path: &str, extra: &[&str]) -> String {
    let out = run(&[&["rbac", "--config", path][..], extra].concat(), None, &[]);
    assert!(out.status.success(), "rbac: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn config(db_url: &str, port: u16) -> String {
    // LEADER_ELECTION's timings, but the Lease in the daemon's own namespace (POD_NAMESPACE).
    let election = r#"
[daemon.leader_election]
enabled = true
lease_duration = "3s"
renew_deadline = "2s"
retry_period = "500ms"
"#;
    let spot = r#"
deployment = "worker-spot"
on_demand_base = 1
on_demand_percentage = 50
unschedulable_after = "1s"
"#;
    Toml::daemon(port)
        .raw("kube_timeout = \"1s\"")
        .raw(election)
        .airflow("a", db_url)
        .raw("queues = [\"a\"]")
        .airflow("b", db_url)
        .raw("queues = [\"b\"]")
        .target("a", "team-a", "worker")
        .bounds(1, 10)
        .per_replica("a", 1)
        .raw("protect_busy_workers = true")
        .scale_up_pods(10)
        .scale_down_at_once()
        .table("spot", spot)
        .target("b", "team-b", "worker")
        .statefulset()
        .bounds(1, 10)
        .per_replica("b", 1)
        .scale_up_pods(10)
        .scale_down_at_once()
        .render()
}

/// Waits until the API server has received a request matching `what`.
async fn request(api: &ApiServer, what: &str, matches: impl Fn(&Call) -> bool) {
    eventually(WAIT, what, || api.requests().iter().map(call).any(|c| matches(&c)).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_the_calls_the_daemon_makes_and_only_in_its_namespaces() {
    let db = TestDb::create(Backend::Postgres, "rbac").await;
    db.create_task_instance(Schema::V2_10).await;
    let api = ApiServer::start().await;
    api.add_deployment("team-a", "worker", 1);
    api.add_statefulset("team-b", "worker", 1);
    api.add_deployment("team-a", "worker-spot", 0);
    api.add_deployment("elsewhere", "worker", 1);
    api.put_node("node-1", &[], false);
    api.put_pod("team-a", "worker-0", &[("app", "worker")], Some("node-1"), None);
    api.put_pod("elsewhere", "worker-0", &[("app", "worker")], Some("node-1"), None);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(&db.url, port);
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &config).unwrap();
    let env = [("POD_NAME", "rbac-test"), ("POD_NAMESPACE", OWN_NAMESPACE)];
    let daemon = Daemon::start(&config, &["run"], Some(&api.kubeconfig(dir.path())), &env);

    // team-a: a scale-up through a conflict (so a fresh read), the spot split, Events;
    // team-b's tasks wait as `scheduled`, which no source counts.
    let queued = |queue| (Some("queued"), Some(queue), None, None);
    let mut rows: Vec<_> = (0..6).map(|_| queued("a")).collect();
    rows.extend((0..3).map(|_| (Some("scheduled"), Some("b"), None, None)));
    api.inject_conflicts(1);
    db.insert(Schema::V2_10, &rows).await;
    eventually(WAIT, "team-a's scale-up", || {
        (api.replicas("team-a", "worker") + api.replicas("team-a", "worker-spot") == 6).then_some(())
    })
    .await;
    for i in 1..4 {
        api.put_pod("team-a", &format!("worker-{i}"), &[("app", "worker")], Some("node-1"), None);
    }
    // A busy-aware scale-down: one of team-a's tasks still running on worker-1.
    db.execute("UPDATE task_instance SET state = 'success' WHERE queue = 'a';\nUPDATE task_instance SET state = 'running', hostname = 'worker-1' WHERE task_id = 'task_0'").await;
    eventually(WAIT, "team-a's scale-down", || (api.replicas("team-a", "worker") == 1).then_some(())).await;
    eventually(WAIT, "a deletion cost", || (!api.pod_patches().is_empty()).then_some(())).await;
    request(&api, "an Event in team-a", |c| c.verb == "create" && c.resource == "events").await;

    // team-b, a StatefulSet: the same through a conflict, up and down, once team-a is at rest.
    let writes = api.scale_writes().len();
    cycles_pass(port, 2).await;
    assert_eq!(api.scale_writes().len(), writes, "team-a is at rest before team-b scales");
    api.next(1, Calls::write("statefulsets/scale")).conflict(Change::version_only());
    db.execute("UPDATE task_instance SET state = 'queued' WHERE queue = 'b'").await;
    let team_b = || api.statefulset_replicas("team-b", "worker");
    eventually(WAIT, "team-b's scale-up", || (team_b() == 3).then_some(())).await;
    db.execute("UPDATE task_instance SET state = 'success' WHERE queue = 'b'").await;
    eventually(WAIT, "team-b's scale-down", || (team_b() == 1).then_some(())).await;
    let in_b = |c: &Call| c.namespace.as_deref() == Some("team-b");
    request(&api, "team-b's re-read after the 409", |c| in_b(c) && c.resource == "statefulsets" && c.verb == "get")
        .await;
    request(&api, "an Event in team-b", |c| in_b(c) && c.resource == "events" && c.verb == "create").await;
    request(&api, "a lease renewal", |c| c.resource == "leases" && c.verb == "update").await;

    let calls: BTreeSet<Call> = api.requests().iter().map(call).collect();
    let namespaces: BTreeSet<Option<&str>> = calls.iter().map(|c| c.namespace.as_deref()).collect();
    assert_eq!(
        namespaces,
        [None, Some(OWN_NAMESPACE), Some("team-a"), Some("team-b")].into(),
        "log:\n{}",
        daemon.log()
    );
    for call in calls.iter().filter(|c| c.namespace.is_none()) {
        assert_eq!(call.resource, "nodes", "the only cluster-scoped calls are for Nodes: {call:?}");
    }

    let printed = yaml_documents(&rbac_command(config_path.to_str().unwrap(), &["--namespace", OWN_NAMESPACE]));
    assert_exactly(&grants(&printed, (OWN_NAMESPACE, "queue-autoscaler")), &calls, "`queue-autoscaler rbac`");
    // deploy/ binds its ClusterRole to its own ServiceAccount: the same calls, from its namespace.
    let from_deploy = calls.iter().map(|c| Call {
        namespace: c
            .namespace
            .as_ref()
            .map(|n| if n == OWN_NAMESPACE { "queue-autoscaler".to_owned() } else { n.clone() }),
        ..c.clone()
    });
    let from_deploy: BTreeSet<Call> = from_deploy.collect();
    let deploy = manifests::render(std::path::Path::new(DEPLOY));
    assert_exactly(&grants(&deploy, ("queue-autoscaler", "queue-autoscaler")), &from_deploy, "deploy/");
    db.drop_database().await;
}

#[test]
fn the_namespaced_component_is_what_rbac_prints_for_the_deploy_config() {
    let file = std::fs::read_to_string(format!("{DEPLOY}/components/namespaced/rbac.yaml")).unwrap();
    let printed = rbac_command(&format!("{DEPLOY}/config.toml"), &["--without-service-account"]);
    assert_eq!(
        file, printed,
        "regenerate: queue-autoscaler rbac --config deploy/config.toml --without-service-account > deploy/components/namespaced/rbac.yaml"
    );
    // An overlay of deploy/ with the component: no ClusterRole but for Nodes, and the
    // ServiceAccount of deploy/ holds exactly what `rbac` grants.
    let rendered = manifests::overlay("components: [\"{deploy}/components/namespaced\"]\n");
    let cluster_roles: Vec<&Value> = rendered.iter().filter(|o| o["kind"] == "ClusterRole").collect();
    assert_eq!(cluster_roles.len(), 1, "{cluster_roles:#?}");
    assert_eq!(cluster_roles[0]["metadata"]["name"], "queue-autoscaler-nodes");
    let account = ("queue-autoscaler", "queue-autoscaler");
    let flatten = |grants: Vec<Grant>| -> BTreeSet<String> { grants.iter().map(|g| format!("{g:?}")).collect() };
    assert_eq!(flatten(grants(&rendered, account)), flatten(grants(&yaml_documents(&printed), account)));
    let namespaces: BTreeSet<String> = grants(&rendered, account).into_iter().filter_map(|g| g.namespace).collect();
    assert_eq!(namespaces, ["airflow", "data", "queue-autoscaler", "streams"].map(String::from).into());
}
