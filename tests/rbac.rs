//! The RBAC in deploy/ grants exactly the calls the daemon makes: a daemon with every feature on
//! (spot twin, busy-aware scale-in, leader election, Events) runs against the test API server,
//! every request is turned into (API group, resource, verb), and the set must equal the rules of
//! the ClusterRole and Role that `kubectl kustomize deploy/` renders.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::airflow::{Backend, Schema, TestDb};
use support::apiserver::{ApiServer, Request};
use support::daemon::{Daemon, free_port};
use support::eventually;

const WAIT: Duration = Duration::from_secs(30);

type Permission = (String, String, String);

/// (API group, resource with subresource, verb) of one request.
fn permission(request: &Request) -> Permission {
    let (path, query) = (request.path.as_str(), request.query.as_str());
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/… (core) or /apis/GROUP/VERSION/…; then optional namespaces/NS; then resource[/name[/sub]].
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not an API path: {path}"),
    };
    let rest = match rest {
        ["namespaces", _, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => panic!("unexpected path {path}"),
    };
    let watch = query.split('&').any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (request.method.as_str(), named, watch) {
        ("GET", _, true) => "watch",
        ("GET", true, false) => "get",
        ("GET", false, false) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", _, _) => "delete",
        (method, _, _) => panic!("unexpected method {method}"),
    };
    (group.to_owned(), resource, verb.to_owned())
}

/// The rules of the rendered ClusterRole and Role, flattened.
fn granted() -> BTreeSet<Permission> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy")])
        .output()
        .unwrap_or_else(|e| panic!("kubectl is needed to render deploy/ ({e}): apt-get install kubernetes-client"));
    let objects: Vec<serde_json::Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let mut granted = BTreeSet::new();
    for role in objects.iter().filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role") {
        for rule in role["rules"].as_array().unwrap() {
            let list = |key: &str| {
                rule[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect::<Vec<_>>()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        granted.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    granted
}

fn config(db_url: &str, port: u16) -> String {
    format!(
        r#"
[daemon]
interval = "1s"
listen = "127.0.0.1:{port}"

[daemon.leader_election]
enabled = true
lease_duration = "3s"
renew_deadline = "2s"
retry_period = "500ms"

[sources.airflow]
kind = "airflow"
url = "{db_url}"

[[targets]]
name = "workers"
namespace = "airflow"
deployment = "worker"
min_replicas = 1
max_replicas = 10
triggers = [{{ source = "airflow", per_replica = 1 }}]
protect_busy_workers = true

[targets.scale_up]
policies = [{{ type = "pods", value = 10, period = "500ms" }}]

[targets.scale_down]
stabilization = "0s"
policies = [{{ type = "percent", value = 100, period = "500ms" }}]

[targets.spot]
deployment = "worker-spot"
on_demand_base = 1
on_demand_percentage = 50
unschedulable_after = "1s"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_the_calls_the_daemon_makes() {
    let db = TestDb::create(Backend::Postgres, "rbac").await;
    db.create_task_instance(Schema::V2_10).await;
    let api = ApiServer::start().await;
    api.add_deployment("airflow", "worker", 1);
    api.add_deployment("airflow", "worker-spot", 0);
    api.put_node("node-1", &[], false);
    api.put_pod("airflow", "worker-0", &[("app", "worker")], Some("node-1"), None);
    api.inject_conflicts(1);
    let dir = tempfile::tempdir().unwrap();
    let env = [("POD_NAME", "rbac-test"), ("POD_NAMESPACE", "queue-autoscaler")];
    let daemon = Daemon::start(&config(&db.url, free_port()), &["run"], Some(&api.kubeconfig(dir.path())), &env);

    // Scale up (a conflict, so a fresh read of the scale), spot split, Events.
    let queued: Vec<_> = (0..6).map(|_| (Some("queued"), Some("default"), None, None)).collect();
    db.insert(Schema::V2_10, &queued).await;
    eventually(WAIT, "the scale-up", || {
        (api.replicas("airflow", "worker") + api.replicas("airflow", "worker-spot") == 6).then_some(())
    })
    .await;
    for i in 1..4 {
        api.put_pod("airflow", &format!("worker-{i}"), &[("app", "worker")], Some("node-1"), None);
    }
    // Then a busy-aware scale-down: one task still running on worker-1.
    db.execute("UPDATE task_instance SET state = 'success';\nUPDATE task_instance SET state = 'running', hostname = 'worker-1' WHERE task_id = 'task_0'").await;
    eventually(WAIT, "the scale-down", || (api.replicas("airflow", "worker") < 4).then_some(())).await;
    eventually(WAIT, "a deletion cost", || (!api.pod_patches().is_empty()).then_some(())).await;
    eventually(WAIT, "a folded Event", || {
        api.requests().iter().any(|r| r.method == "PATCH" && r.path.contains("/events/")).then_some(())
    })
    .await;
    eventually(WAIT, "a lease renewal", || {
        api.requests().iter().any(|r| r.method == "PUT" && r.path.contains("/leases/")).then_some(())
    })
    .await;

    let made: BTreeSet<Permission> = api.requests().iter().map(permission).collect();
    let granted = granted();
    let missing: Vec<_> = made.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&made).collect();
    assert!(missing.is_empty(), "calls the RBAC does not allow: {missing:?}\nlog:\n{}", daemon.log());
    assert!(unused.is_empty(), "permissions the daemon never uses (least privilege): {unused:?}");
    // The lease calls stay in the daemon's own namespace (a Role, not a ClusterRole).
    for request in api.requests().iter().filter(|r| r.path.contains("/leases")) {
        assert!(request.path.contains("/namespaces/queue-autoscaler/"), "{}", request.path);
    }
    db.drop_database().await;
}
