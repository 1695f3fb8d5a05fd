//! The test API server itself: a real client (Debian's `kubectl`) works against it unchanged,
//! it keeps the real server's rules (selectors, validation, preconditions, watch semantics), and
//! each injected fault does what it says, seen through kube-rs as the daemon sees it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use support::apiserver::{ApiServer, Calls, Change};
use support::eventually;

const WAIT: Duration = Duration::from_secs(10);
const PAUSED: &str = "queue-autoscaler.io/paused";

// ---------------------------------------------------------------------------------------------
// kubectl, unchanged, through a kubeconfig

/// `kubectl` with a kubeconfig for the server, its caches in a temporary home.
struct Kubectl {
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    fn new(api: &ApiServer) -> Kubectl {
        let home = tempfile::tempdir().expect("tempdir");
        Kubectl { kubeconfig: api.kubeconfig(home.path()), home }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command.args(args).env("KUBECONFIG", &self.kubeconfig).env("HOME", self.home.path());
        command.env_remove("KUBERNETES_SERVICE_HOST");
        command
    }

    /// Runs kubectl to completion; its stdout, which must come with success.
    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap_or_else(|e| {
            panic!("kubectl is needed ({e}): apt-get install kubernetes-client (scripts/test.sh does)")
        });
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "kubectl {args:?} failed:\n{stdout}\n{stderr}");
        stdout.into_owned()
    }

    /// Starts a long-running kubectl (`get --watch`) whose output lines are collected.
    fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self.command(args).stdout(Stdio::piped()).spawn().expect("start kubectl");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, lines }
    }
}

struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Waits until `n` output lines start with `name` (kubectl prints a row per watch event).
    async fn rows_of(&self, name: &str, n: usize) {
        let what = format!("{n} kubectl rows of {name}");
        let rows = || self.lines.lock().unwrap().iter().filter(|l| l.split_whitespace().next() == Some(name)).count();
        eventually(WAIT, &what, || (rows() >= n).then_some(())).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deployment `worker` (2 replicas) and StatefulSet `celery` (`members`) in `default`, and kubectl.
async fn cluster(members: i64) -> (ApiServer, Kubectl) {
    let api = ApiServer::start().await;
    api.add_deployment("default", "worker", 2);
    api.add_statefulset("default", "celery", members);
    let kubectl = Kubectl::new(&api);
    (api, kubectl)
}

/// Everything kubectl asked (discovery included) was answered with success.
fn assert_all_answered(api: &ApiServer) {
    let failed: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| !r.succeeded())
        .map(|r| format!("{} {}?{} → {}", r.method, r.path, r.query, r.status))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // kubectl blocks a thread
async fn kubectl_gets_deployments_statefulsets_and_pods() {
    let (api, kubectl) = cluster(3).await;

    // No server-side printing (Table): kubectl falls back to NAME and AGE, as with an old server.
    let deployments = kubectl.run(&["get", "deployments"]);
    let rows: Vec<Vec<&str>> = deployments.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!((rows[0].as_slice(), &rows[1][0]), (["NAME", "AGE"].as_slice(), &"worker"), "{deployments}");
    assert_eq!(kubectl.run(&["get", "statefulsets", "-o", "name"]), "statefulset.apps/celery\n");
    let replicas = kubectl.run(&["get", "deployment", "worker", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "2");
    let pods = kubectl.run(&["get", "pods", "-o", "name"]);
    assert_eq!(pods, "pod/celery-0\npod/celery-1\npod/celery-2\n");
    assert_all_answered(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // kubectl blocks a thread
async fn kubectl_scale_writes_through_the_scale_subresource() {
    let (api, kubectl) = cluster(3).await;

    assert_eq!(kubectl.run(&["scale", "deployment/worker", "--replicas=3"]), "deployment.apps/worker scaled\n");
    assert_eq!(api.replicas("default", "worker"), 3);
    assert_eq!(kubectl.run(&["scale", "statefulset/celery", "--replicas=1"]), "statefulset.apps/celery scaled\n");
    assert_eq!(api.statefulset_replicas("default", "celery"), 1);
    assert_eq!(api.pod_names("default"), ["celery-0"], "the StatefulSet's highest ordinals went");

    let writes: Vec<(&str, String, i64)> =
        api.scale_writes().iter().map(|w| (w.kind, w.name.clone(), w.replicas)).collect();
    assert_eq!(writes, [("Deployment", "worker".to_owned(), 3), ("StatefulSet", "celery".to_owned(), 1)]);
    assert_all_answered(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // kubectl blocks a thread
async fn kubectl_patch_merges_into_the_object() {
    let (api, kubectl) = cluster(1).await;
    let patch = format!(r#"{{"metadata":{{"annotations":{{"{PAUSED}":"true"}}}},"spec":{{"replicas":4}}}}"#);

    let out = kubectl.run(&["patch", "deployment", "worker", "--type=merge", "-p", &patch]);
    assert_eq!(out, "deployment.apps/worker patched\n");
    assert_eq!(api.replicas("default", "worker"), 4);
    let annotations = kubectl.run(&["get", "deployment", "worker", "-o", "jsonpath={.metadata.annotations}"]);
    assert!(annotations.contains(r#""queue-autoscaler.io/paused":"true""#), "{annotations}");

    let out = kubectl.run(&["patch", "statefulset", "celery", "--type=merge", "-p", &patch]);
    assert_eq!(out, "statefulset.apps/celery patched\n");
    assert_eq!(api.pod_names("default"), ["celery-0", "celery-1", "celery-2", "celery-3"]);
    assert_all_answered(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // kubectl blocks a thread
async fn kubectl_get_watch_streams_changes() {
    let (api, kubectl) = cluster(1).await;

    let pods = kubectl.spawn(&["get", "pods", "--watch"]);
    pods.rows_of("celery-0", 1).await;
    api.put_pod("default", "late", &[("app", "other")], None, None);
    pods.rows_of("late", 1).await;

    let sets = kubectl.spawn(&["get", "statefulsets", "--watch"]);
    sets.rows_of("celery", 1).await;
    api.change_statefulset("default", "celery", Change::to_replicas(2));
    sets.rows_of("celery", 2).await;
    pods.rows_of("celery-1", 1).await;
    let watches = api.requests_to(&Calls::watch("pods"));
    assert!(watches[0].query.contains("resourceVersion="), "kubectl resumes from its list: {}", watches[0].query);
    assert_all_answered(&api);
}

// ---------------------------------------------------------------------------------------------
// Faults

fn merge_replicas(n: i64, version: Option<&str>) -> Patch<Value> {
    Patch::Merge(json!({ "metadata": { "resourceVersion": version }, "spec": { "replicas": n } }))
}

/// The HTTP status of a failed kube-rs call.
fn code<T: std::fmt::Debug>(result: kube::Result<T>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_conflict_comes_with_the_other_writers_change() {
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 2);
    api.next(1, Calls::patch("deployments/scale").of("worker"))
        .conflict(Change::to_replicas(5).annotate(PAUSED, "true"));
    let deployments: Api<Deployment> = Api::namespaced(api.client(), "data");
    let seen = deployments.get_scale("worker").await.unwrap();

    let write = deployments.patch_scale("worker", &PatchParams::default(), &merge_replicas(0, None)).await;
    assert_eq!(code(write), 409);
    let now = deployments.get("worker").await.unwrap();
    assert_eq!(now.spec.unwrap().replicas, Some(5), "a client that re-reads sees the other writer's replicas");
    assert_eq!(now.metadata.annotations.unwrap()[PAUSED], "true", "… and its pause");
    assert_ne!(now.metadata.resource_version, seen.metadata.resource_version);
    assert!(api.scale_writes().is_empty(), "the 409 wrote nothing: {:?}", api.scale_writes());
    assert_eq!(api.faults_pending(), 0);

    let retry = deployments.patch_scale("worker", &PatchParams::default(), &merge_replicas(0, None)).await;
    assert_eq!(retry.unwrap().spec.unwrap().replicas, Some(0), "one conflict only");
    let sequence: Vec<String> =
        api.requests_to(&Calls::any("deployments/scale")).iter().map(|r| r.to_string()).collect();
    assert_eq!(
        sequence,
        [
            "get deployments/scale data/worker → 200",
            "patch deployments/scale data/worker → 409",
            "patch deployments/scale data/worker → 200",
        ]
    );
}

#[tokio::test]
async fn throttled_requests_get_429_with_retry_after() {
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 2);
    api.next(1, Calls::get("deployments")).throttle(Duration::from_secs(3));
    let request = || {
        let request = axum::http::Request::get("/apis/apps/v1/namespaces/data/deployments/worker");
        request.body(kube::client::Body::empty()).unwrap()
    };

    let throttled = api.client().send(request()).await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "3");
    let body: Value = serde_json::from_slice(&throttled.into_body().collect_bytes().await.unwrap()).unwrap();
    assert_eq!((body["reason"].as_str(), &body["details"]["retryAfterSeconds"]), (Some("TooManyRequests"), &json!(3)));
    assert_eq!(api.client().send(request()).await.unwrap().status(), 200, "only the next one");
}

#[tokio::test]
async fn kube_rs_waits_out_retry_after_by_default() {
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 2);
    api.next(1, Calls::get("deployments")).throttle(Duration::from_secs(1));
    let default_client = kube::Client::try_from(kube::Config::new(api.url.parse().unwrap())).unwrap();

    let deployments: Api<Deployment> = Api::namespaced(default_client, "data");
    assert!(deployments.get("worker").await.is_ok(), "kube's default RetryPolicy retried the 429 itself");
    let gets = api.requests_to(&Calls::get("deployments"));
    assert_eq!(gets.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    assert!(gets[1].at - gets[0].at >= Duration::from_secs(1), "after Retry-After: {:?}", gets[1].at - gets[0].at);
}

#[tokio::test]
async fn an_injected_500_fails_only_the_requests_described() {
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 2);
    api.add_deployment("data", "other", 1);
    api.next(2, Calls::get("deployments").of("worker")).fail(500);
    let deployments: Api<Deployment> = Api::namespaced(api.client(), "data");

    assert!(deployments.get("other").await.is_ok(), "another object is not affected");
    assert!(deployments.get_scale("worker").await.is_ok(), "nor another resource (its scale)");
    assert_eq!(code(deployments.get("worker").await), 500);
    assert_eq!(code(deployments.get("worker").await), 500);
    assert!(deployments.get("worker").await.is_ok(), "two only");
}

#[tokio::test]
async fn a_slow_answer_outlasts_the_client_timeout_but_the_write_happens() {
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 2);
    api.every(Calls::patch("deployments/scale")).answer_after(Duration::from_secs(2));
    let mut config = kube::Config::new(api.url.parse().unwrap());
    config.read_timeout = Some(Duration::from_millis(300));
    let deployments: Api<Deployment> = Api::namespaced(kube::Client::try_from(config).unwrap(), "data");

    let started = Instant::now();
    let write = deployments.patch_scale("worker", &PatchParams::default(), &merge_replicas(4, None)).await;
    assert!(write.is_err(), "the client gave up: {write:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "it did not wait for the answer");
    assert_eq!(api.replicas("data", "worker"), 4, "the server did the write all the same");
    let recorded = &api.requests_to(&Calls::patch("deployments/scale"))[0];
    assert_eq!(recorded.status, 200);
    assert!(recorded.answered_after >= Duration::from_secs(2), "{:?}", recorded.answered_after);

    api.clear_faults();
    let write = deployments.patch_scale("worker", &PatchParams::default(), &merge_replicas(5, None)).await;
    assert!(write.is_ok(), "fast again once the fault is cleared: {write:?}");
}

// ---------------------------------------------------------------------------------------------
// Watches

fn pods(api: &ApiServer) -> Api<Pod> {
    Api::namespaced(api.client(), "data")
}

/// The next event of a watch, within `WAIT`; `None` when the stream ended.
async fn next_event<S>(watch: &mut S) -> Option<WatchEvent<Pod>>
where
    S: futures_util::Stream<Item = kube::Result<WatchEvent<Pod>>> + Unpin,
{
    let event = tokio::time::timeout(WAIT, watch.next()).await.expect("an event or the end within WAIT");
    event.map(|e| e.expect("a well-formed event"))
}

fn name(event: &WatchEvent<Pod>) -> String {
    match event {
        WatchEvent::Added(p) | WatchEvent::Modified(p) | WatchEvent::Deleted(p) => p.metadata.name.clone().unwrap(),
        other => panic!("expected an object event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_ends_when_the_server_says_so() {
    let api = ApiServer::start().await;
    api.put_pod("data", "a", &[("app", "worker")], Some("node-1"), None);
    api.next(1, Calls::watch("pods")).end_after(Duration::from_millis(300));

    let mut ending = pods(&api).watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert!(matches!(next_event(&mut ending).await, Some(WatchEvent::Added(_))), "the current pods first");
    assert!(next_event(&mut ending).await.is_none(), "then the end, after 300 ms");

    let mut open = pods(&api).watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert!(next_event(&mut open).await.is_some());
    api.close_watches();
    assert!(next_event(&mut open).await.is_none(), "close_watches ends every open watch");
}

#[tokio::test]
async fn a_watch_honours_timeout_seconds() {
    let api = ApiServer::start().await;
    let started = Instant::now();
    let mut watch = pods(&api).watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    assert!(next_event(&mut watch).await.is_none());
    assert!(started.elapsed() >= Duration::from_secs(1), "not before timeoutSeconds: {:?}", started.elapsed());
}

#[tokio::test]
async fn bookmarks_go_only_to_watches_that_allow_them() {
    let api = ApiServer::start().await;
    let with = WatchParams::default();
    let without = WatchParams::default().disable_bookmarks();
    let mut bookmarked = pods(&api).watch(&with, "0").await.unwrap().boxed();
    let mut plain = pods(&api).watch(&without, "0").await.unwrap().boxed();
    api.add_deployment("data", "unrelated", 1);

    api.send_bookmarks();
    match next_event(&mut bookmarked).await {
        Some(WatchEvent::Bookmark(b)) => assert_eq!(b.metadata.resource_version, "1", "the current version"),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    api.put_pod("data", "after", &[], None, None);
    assert_eq!(name(&next_event(&mut plain).await.unwrap()), "after", "no bookmark before it");
    let requested = api.requests_to(&Calls::watch("pods"));
    assert!(requested[0].query.contains("allowWatchBookmarks=true"), "{}", requested[0].query);
}

#[tokio::test]
async fn a_watch_resumes_from_its_version_until_compaction_then_gets_410() {
    let api = ApiServer::start().await;
    api.put_pod("data", "a", &[], None, None);
    let version = pods(&api).list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    api.put_pod("data", "b", &[], None, None);
    api.delete_pod("data", "a");

    let mut resumed = pods(&api).watch(&WatchParams::default(), &version).await.unwrap().boxed();
    let first = next_event(&mut resumed).await.unwrap();
    assert!(matches!(first, WatchEvent::Added(_)) && name(&first) == "b", "the changes after {version}");
    let second = next_event(&mut resumed).await.unwrap();
    assert!(matches!(second, WatchEvent::Deleted(_)) && name(&second) == "a");

    api.compact();
    let mut gone = pods(&api).watch(&WatchParams::default(), &version).await.unwrap().boxed();
    match next_event(&mut gone).await {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert_eq!(status.message, format!("too old resource version: {version} (3)"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(next_event(&mut gone).await.is_none(), "and the stream ends");
    let mut current = pods(&api).watch(&WatchParams::default(), "3").await.unwrap().boxed();
    api.put_pod("data", "c", &[], None, None);
    assert_eq!(name(&next_event(&mut current).await.unwrap()), "c", "a current version still resumes");
}

// ---------------------------------------------------------------------------------------------
// The real server's rules

#[tokio::test]
async fn set_based_label_selectors_select() {
    let api = ApiServer::start().await;
    api.put_pod("data", "a", &[("tier", "a"), ("spot", "true")], None, None);
    api.put_pod("data", "b", &[("tier", "b")], None, None);
    api.put_pod("data", "c", &[("tier", "c"), ("spot", "false")], None, None);
    api.put_pod("data", "none", &[], None, None);
    let pods = pods(&api);
    let select = async |selector: &str| -> Vec<String> {
        let list = pods.list(&ListParams::default().labels(selector)).await.unwrap();
        list.items.into_iter().map(|p| p.metadata.name.unwrap()).collect()
    };

    assert_eq!(select("tier in (a,b)").await, ["a", "b"]);
    assert_eq!(select("tier notin (a,b)").await, ["c", "none"], "notin keeps objects without the label");
    assert_eq!(select("!spot").await, ["b", "none"]);
    assert_eq!(select("spot").await, ["a", "c"]);
    assert_eq!(select("tier!=a").await, ["b", "c", "none"]);
    assert_eq!(select("tier in (a, c),spot=false").await, ["c"]);
    let bad = pods.list(&ListParams::default().labels("tier in (a")).await;
    assert_eq!(code(bad), 400, "a malformed selector is refused, not ignored");
}

/// Lease `ops/leader` through an untyped client, so that a test can send what k8s-openapi would not.
struct Leases(Api<DynamicObject>);

impl Leases {
    fn of(api: &ApiServer) -> Leases {
        Leases(Api::namespaced_with(api.client(), "ops", &ApiResource::erase::<Lease>(&())))
    }

    fn lease(spec: Value) -> DynamicObject {
        let lease = json!({ "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": { "name": "leader" }, "spec": spec });
        serde_json::from_value(lease).unwrap()
    }

    async fn create(&self, spec: Value) -> kube::Result<DynamicObject> {
        self.0.create(&PostParams::default(), &Leases::lease(spec)).await
    }

    async fn put(&self, lease: &DynamicObject) -> kube::Result<DynamicObject> {
        self.0.replace("leader", &PostParams::default(), lease).await
    }
}

#[tokio::test]
async fn lease_fields_are_validated_like_the_real_server() {
    let api = ApiServer::start().await;
    let leases = Leases::of(&api);

    match leases.create(json!({ "holderIdentity": "a", "leaseDurationSeconds": 0 })).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            let expected = "Lease.coordination.k8s.io \"leader\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0";
            assert_eq!(status.message, expected);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    assert_eq!(code(leases.create(json!({ "leaseTransitions": -1 })).await), 422);
    assert_eq!(code(leases.create(json!({ "preferredHolder": "b" })).await), 422, "only with a strategy");
    let seconds_only = json!({ "renewTime": "2025-01-01T00:00:00Z" });
    assert_eq!(code(leases.create(seconds_only).await), 400, "a MicroTime has 6 fractional digits");
    assert!(api.lease("ops", "leader").is_none(), "nothing invalid was stored");

    let good = json!({ "holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2025-01-01T00:00:00.000000Z" });
    let mut invalid = leases.create(good).await.unwrap();
    invalid.data["spec"]["leaseDurationSeconds"] = json!(0);
    assert_eq!(code(leases.put(&invalid).await), 422, "updates too");
    assert_eq!(api.lease("ops", "leader").unwrap()["spec"]["leaseDurationSeconds"], 15);
}

#[tokio::test]
async fn a_lease_is_replaced_only_with_the_version_read() {
    let api = ApiServer::start().await;
    let leases = Leases::of(&api);

    let created = leases.put(&Leases::lease(json!({ "holderIdentity": "a", "leaseDurationSeconds": 15 }))).await;
    let created = created.expect("a PUT may create a Lease (AllowCreateOnUpdate)");
    let renewed = leases.put(&created).await.expect("a PUT with the version read");
    assert_eq!(code(leases.put(&created).await), 409, "a stale version loses");
    let mut unversioned = renewed.clone();
    unversioned.metadata.resource_version = None;
    assert_eq!(code(leases.put(&unversioned).await), 409, "Leases allow no unconditional update");
    let renewed = leases.put(&renewed).await.unwrap();

    api.change_lease("ops", "leader", Change::merge(json!({ "spec": { "holderIdentity": "b" } })));
    assert_eq!(code(leases.put(&renewed).await), 409, "taken over in between");
    assert_eq!(api.lease("ops", "leader").unwrap()["spec"]["holderIdentity"], "b");
}

#[tokio::test]
async fn resource_version_preconditions_hold_on_put_and_patch() {
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 2);
    let deployments: Api<Deployment> = Api::namespaced(api.client(), "data");
    let read = deployments.get("worker").await.unwrap();
    let version = read.metadata.resource_version.clone();
    api.set_replicas("data", "worker", 3);

    let stale = json!({ "metadata": { "resourceVersion": version }, "spec": { "replicas": 7 } });
    let patched = deployments.patch("worker", &PatchParams::default(), &Patch::Merge(&stale)).await;
    assert_eq!(code(patched), 409);
    assert_eq!(
        code(deployments.patch_scale("worker", &PatchParams::default(), &merge_replicas(7, version.as_deref())).await),
        409
    );
    assert_eq!(code(deployments.replace("worker", &PostParams::default(), &read).await), 409);
    assert_eq!(api.replicas("data", "worker"), 3, "nothing stale was written");

    let mut unversioned = read.clone();
    unversioned.metadata.resource_version = None;
    let replaced = deployments.replace("worker", &PostParams::default(), &unversioned).await;
    assert_eq!(replaced.unwrap().spec.unwrap().replicas, Some(2), "Deployments allow unconditional updates");
    let negative = deployments.patch_scale("worker", &PatchParams::default(), &merge_replicas(-1, None)).await;
    assert_eq!(code(negative), 422);
}

// ---------------------------------------------------------------------------------------------
// StatefulSets

#[tokio::test]
async fn a_statefulset_scales_through_its_scale_and_its_pods_follow_by_ordinal() {
    let api = ApiServer::start().await;
    api.add_statefulset("airflow", "worker", 3);
    let sets: Api<StatefulSet> = Api::namespaced(api.client(), "airflow");
    assert_eq!(api.pod_names("airflow"), ["worker-0", "worker-1", "worker-2"]);

    let scale = sets.get_scale("worker").await.unwrap();
    assert_eq!(scale.status.as_ref().unwrap().selector.as_deref(), Some("app=worker"));
    sets.patch_scale("worker", &PatchParams::default(), &merge_replicas(5, None)).await.unwrap();
    assert_eq!(api.pod_names("airflow"), ["worker-0", "worker-1", "worker-2", "worker-3", "worker-4"]);

    let mut smaller = sets.get_scale("worker").await.unwrap();
    smaller.spec.as_mut().unwrap().replicas = Some(2);
    sets.replace_scale("worker", &PostParams::default(), &smaller).await.unwrap();
    assert_eq!(api.pod_names("airflow"), ["worker-0", "worker-1"], "the highest ordinals went");
    assert_eq!(code(sets.replace_scale("worker", &PostParams::default(), &smaller).await), 409, "a stale Scale");

    let writes: Vec<(&str, i64, &str)> = api.scale_writes().iter().map(|w| (w.kind, w.replicas, w.method)).collect();
    assert_eq!(writes, [("StatefulSet", 5, "merge"), ("StatefulSet", 2, "put")]);
    let listed = sets.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].spec.as_ref().unwrap().replicas, Some(2));
    let pod = &pods_of(&api, "airflow").await[1];
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["apps.kubernetes.io/pod-index"], "1");
}

async fn pods_of(api: &ApiServer, namespace: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(api.client(), namespace);
    pods.list(&ListParams::default()).await.unwrap().items
}
