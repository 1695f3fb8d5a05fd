//! A test Kubernetes API server: real HTTP, the real JSON shapes, for the calls the daemon makes.
//!
//! It serves Deployments and their `scale` subresource (GET, merge/apply/strategic PATCH, PUT,
//! with `resourceVersion` preconditions and 409s), `events.k8s.io/v1` Events (create, patch), Pods
//! (get, list and watch by label selector, merge PATCH) and Nodes (list and watch), and `Status`
//! 404s for anything else. Watches replay the changes after the `resourceVersion` asked for, then
//! stream new ones as newline-delimited JSON, as the real API server does. Every request and every scale write is recorded so tests can
//! assert what the daemon did. The daemon reaches it through an ordinary kubeconfig.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A write the daemon made to a Deployment's replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleWrite {
    pub namespace: String,
    pub name: String,
    pub replicas: i64,
    /// `merge`, `apply`, `strategic` or `put`.
    pub method: &'static str,
    pub field_manager: Option<String>,
    /// The bearer token of the writer (each test daemon can have its own).
    pub token: Option<String>,
    /// When the write arrived.
    pub at: std::time::Instant,
}

/// A request as received: method and path with query.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
}

/// A change to a watched object, as a watch streams it.
#[derive(Debug, Clone)]
struct Change {
    version: u64,
    /// `pods` or `nodes`.
    resource: &'static str,
    kind: &'static str,
    object: Value,
}

struct Cluster {
    resource_version: u64,
    deployments: BTreeMap<(String, String), Value>,
    pods: BTreeMap<(String, String), Value>,
    nodes: BTreeMap<String, Value>,
    /// Every change to pods and nodes, for watches that start from an older version.
    changes: Vec<Change>,
    feed: tokio::sync::broadcast::Sender<Change>,
    /// Pod PATCHes received: (namespace, name, body).
    pod_patches: Vec<(String, String, Value)>,
    leases: BTreeMap<(String, String), Value>,
    events: BTreeMap<(String, String), Value>,
    scale_writes: Vec<ScaleWrite>,
    requests: Vec<Request>,
    /// Scale writes still to be answered with 409 (as if someone else wrote first).
    conflicts_to_inject: usize,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            resource_version: 0,
            deployments: BTreeMap::new(),
            pods: BTreeMap::new(),
            nodes: BTreeMap::new(),
            changes: Vec::new(),
            feed: tokio::sync::broadcast::channel(1024).0,
            pod_patches: Vec::new(),
            leases: BTreeMap::new(),
            events: BTreeMap::new(),
            scale_writes: Vec::new(),
            requests: Vec::new(),
            conflicts_to_inject: 0,
        }
    }
}

/// A running test API server; stops when dropped.
pub struct ApiServer {
    pub url: String,
    cluster: Arc<Mutex<Cluster>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    pub async fn start() -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the test API server");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let cluster = Arc::new(Mutex::new(Cluster::default()));
        let app = Router::new().fallback(handle).with_state(cluster.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ApiServer { url: format!("http://{addr}"), cluster, task }
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a kubeconfig pointing at this server into `dir` and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        self.kubeconfig_with_token(dir, "test-token")
    }

    /// A kubeconfig whose user presents `token`, so that writes can be told apart by writer.
    pub fn kubeconfig_with_token(&self, dir: &Path, token: &str) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{token}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\n",
            self.url
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// A Lease as stored now.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.lock().leases.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Adds a Deployment with `replicas` and pod labels `app=<name>`.
    pub fn add_deployment(&self, namespace: &str, name: &str, replicas: i64) {
        let mut cluster = self.lock();
        let version = cluster.bump();
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
                "resourceVersion": version.to_string(), "annotations": {}, "labels": { "app": name },
            },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "worker", "image": "worker" }] } },
            },
            "status": { "replicas": replicas },
        });
        cluster.deployments.insert((namespace.to_owned(), name.to_owned()), deployment);
    }

    /// Sets an annotation on a Deployment (as an operator would with `kubectl annotate`).
    pub fn annotate(&self, namespace: &str, name: &str, key: &str, value: Option<&str>) {
        let mut cluster = self.lock();
        let version = cluster.bump();
        let d = cluster.deployments.get_mut(&(namespace.to_owned(), name.to_owned())).expect("deployment exists");
        let annotations = &mut d["metadata"]["annotations"];
        match value {
            Some(v) => annotations[key] = json!(v),
            None => {
                annotations.as_object_mut().map(|a| a.remove(key));
            }
        }
        d["metadata"]["resourceVersion"] = json!(version.to_string());
    }

    /// Changes replicas behind the daemon's back (another writer), bumping the version.
    pub fn set_replicas(&self, namespace: &str, name: &str, replicas: i64) {
        let mut cluster = self.lock();
        let version = cluster.bump();
        let d = cluster.deployments.get_mut(&(namespace.to_owned(), name.to_owned())).expect("deployment exists");
        d["spec"]["replicas"] = json!(replicas);
        d["metadata"]["resourceVersion"] = json!(version.to_string());
    }

    pub fn replicas(&self, namespace: &str, name: &str) -> i64 {
        self.lock().deployments[&(namespace.to_owned(), name.to_owned())]["spec"]["replicas"]
            .as_i64()
            .expect("replicas")
    }

    /// Answers the next `n` scale writes with 409 Conflict.
    pub fn inject_conflicts(&self, n: usize) {
        self.lock().conflicts_to_inject = n;
    }

    pub fn scale_writes(&self) -> Vec<ScaleWrite> {
        self.lock().scale_writes.clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.lock().events.values().cloned().collect()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Adds (or replaces) a pod with these labels. `node`: scheduled there and Running; else
    /// Pending, and Unschedulable since `unschedulable_for` ago when given.
    pub fn put_pod(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        node: Option<&str>,
        unschedulable_for: Option<Duration>,
    ) {
        let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        let now = std::time::SystemTime::now();
        let since = |ago: Duration| rfc3339(now - ago);
        let (phase, conditions) = match (node, unschedulable_for) {
            (Some(_), _) => (
                "Running",
                json!([{ "type": "PodScheduled", "status": "True" }, { "type": "Ready", "status": "True" }]),
            ),
            (None, Some(ago)) => (
                "Pending",
                json!([{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
                         "lastTransitionTime": since(ago) }]),
            ),
            (None, None) => ("Pending", json!([])),
        };
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "namespace": namespace, "uid": format!("uid-pod-{namespace}-{name}"), "labels": labels,
                          "annotations": {}, "creationTimestamp": since(Duration::from_secs(60)) },
            "spec": { "nodeName": node, "containers": [{ "name": "worker", "image": "worker" }] },
            "status": { "phase": phase, "conditions": conditions },
        });
        self.lock().upsert_pod(namespace, name, pod);
    }

    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let mut cluster = self.lock();
        if let Some(pod) = cluster.pods.remove(&(namespace.to_owned(), name.to_owned())) {
            cluster.record("pods", "DELETED", pod);
        }
    }

    /// A pod's annotations as they are now.
    pub fn pod_annotations(&self, namespace: &str, name: &str) -> serde_json::Map<String, Value> {
        let cluster = self.lock();
        let pod = &cluster.pods[&(namespace.to_owned(), name.to_owned())];
        pod["metadata"]["annotations"].as_object().cloned().unwrap_or_default()
    }

    /// Every pod PATCH received: (namespace, name, body).
    pub fn pod_patches(&self) -> Vec<(String, String, Value)> {
        self.lock().pod_patches.clone()
    }

    /// Adds (or replaces) a node with these taint keys, cordoned or not.
    pub fn put_node(&self, name: &str, taints: &[&str], cordoned: bool) {
        let taints: Vec<Value> = taints.iter().map(|k| json!({ "key": k, "effect": "NoSchedule" })).collect();
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "uid": format!("uid-node-{name}"), "labels": { "karpenter.sh/capacity-type": "spot" } },
            "spec": { "taints": taints, "unschedulable": cordoned },
        });
        let mut cluster = self.lock();
        let kind = if cluster.nodes.contains_key(name) { "MODIFIED" } else { "ADDED" };
        let node = cluster.stamp(node);
        cluster.nodes.insert(name.to_owned(), node.clone());
        cluster.record("nodes", kind, node);
    }
}

/// RFC 3339 UTC with seconds, as the API server writes times.
fn rfc3339(time: std::time::SystemTime) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

impl Cluster {
    fn bump(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// Gives `object` the next resourceVersion.
    fn stamp(&mut self, mut object: Value) -> Value {
        let version = self.bump();
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        object
    }

    fn upsert_pod(&mut self, namespace: &str, name: &str, pod: Value) {
        let key = (namespace.to_owned(), name.to_owned());
        let kind = if self.pods.contains_key(&key) { "MODIFIED" } else { "ADDED" };
        let pod = self.stamp(pod);
        self.pods.insert(key, pod.clone());
        self.record("pods", kind, pod);
    }

    /// Remembers a change and tells the open watches.
    fn record(&mut self, resource: &'static str, kind: &'static str, object: Value) {
        let version = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.resource_version);
        let change = Change { version, resource, kind, object };
        self.changes.push(change.clone());
        let _ = self.feed.send(change);
    }

    /// The objects of `resource` in `namespace` (all namespaces when `None`) matching `selector`.
    fn matching(&self, resource: &str, namespace: Option<&str>, selector: &Selector) -> Vec<Value> {
        let objects: Vec<&Value> = match resource {
            "pods" => {
                self.pods.iter().filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns)).map(|(_, p)| p).collect()
            }
            _ => self.nodes.values().collect(),
        };
        objects.into_iter().filter(|o| selector.matches(o)).cloned().collect()
    }
}

/// An equality-based label selector (`a=b,c=d`), the form the daemon sends.
#[derive(Clone, Default)]
struct Selector(Vec<(String, String)>);

impl Selector {
    fn parse(query: &str) -> Selector {
        let raw = query_param(query, "labelSelector").unwrap_or_default();
        Selector(
            raw.split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once('=').map(|(k, v)| (k.trim_end_matches('=').to_owned(), v.to_owned())))
                .collect(),
        )
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.0.iter().all(|(k, v)| labels[k].as_str() == Some(v))
    }
}

/// A query parameter, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A list, or (with `watch=true`) a stream of changes after `resourceVersion`.
fn list_or_watch(cluster: &Cluster, resource: &'static str, namespace: Option<&str>, query: &str) -> Response {
    let selector = Selector::parse(query);
    let watching = matches!(query_param(query, "watch").as_deref(), Some("true" | "1"));
    if !watching {
        let kind = if resource == "pods" { "PodList" } else { "NodeList" };
        let items = cluster.matching(resource, namespace, &selector);
        let list = json!({ "apiVersion": "v1", "kind": kind, "metadata": { "resourceVersion": cluster.resource_version.to_string() }, "items": items });
        return respond(StatusCode::OK, &list);
    }
    let since: u64 = query_param(query, "resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let namespace = namespace.map(str::to_owned);
    let wanted = move |c: &Change| {
        c.resource == resource
            && c.version > since
            && namespace.as_deref().is_none_or(|n| c.object["metadata"]["namespace"].as_str() == Some(n))
            && selector.matches(&c.object)
    };
    let line = |c: &Change| {
        Ok::<_, std::convert::Infallible>(Bytes::from(format!("{}\n", json!({ "type": c.kind, "object": c.object }))))
    };
    let replay: Vec<_> = cluster.changes.iter().filter(|c| wanted(c)).map(line).collect();
    let live = futures_util::stream::unfold((cluster.feed.subscribe(), wanted), move |(mut feed, wanted)| async move {
        loop {
            match feed.recv().await {
                Ok(change) if wanted(&change) => return Some((line(&change), (feed, wanted))),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::stream::iter(replay).chain(live);
    Response::builder()
        .status(StatusCode::OK)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn handle(
    State(cluster): State<Arc<Mutex<Cluster>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut cluster = cluster.lock().unwrap_or_else(|p| p.into_inner());
    let path = uri.path().to_owned();
    cluster.requests.push(Request { method: method.to_string(), path: uri.to_string() });
    let query = uri.query().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => match cluster.deployment(ns, name) {
            Some(d) => ok(d.clone()),
            None => not_found("deployments.apps", name),
        },
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments", name, "scale"]) => {
            match cluster.deployment(ns, name) {
                Some(d) => ok(scale_of(d)),
                None => not_found("deployments.apps", name),
            }
        }
        ("PATCH" | "PUT", ["apis", "apps", "v1", "namespaces", ns, "deployments", name, "scale"]) => {
            let kind = match (method.as_str(), content_type) {
                ("PUT", _) => "put",
                (_, t) if t.starts_with("application/apply-patch") => "apply",
                (_, t) if t.starts_with("application/strategic-merge-patch") => "strategic",
                _ => "merge",
            };
            cluster.write_scale(ns, name, &body, kind, field_manager(query), token)
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => list_or_watch(&cluster, "pods", Some(ns), query),
        ("GET", ["api", "v1", "pods"]) => list_or_watch(&cluster, "pods", None, query),
        ("GET", ["api", "v1", "nodes"]) => list_or_watch(&cluster, "nodes", None, query),
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match cluster.pods.get(&(ns.to_string(), name.to_string())) {
                Some(pod) => ok(pod.clone()),
                None => not_found("pods", name),
            }
        }
        ("PATCH", ["api", "v1", "namespaces", ns, "pods", name]) => {
            let key = (ns.to_string(), name.to_string());
            let Some(mut pod) = cluster.pods.get(&key).cloned() else {
                return not_found("pods", name);
            };
            cluster.pod_patches.push((ns.to_string(), name.to_string(), body.clone()));
            merge(&mut pod, &body);
            cluster.upsert_pod(ns, name, pod.clone());
            ok(cluster.pods[&key].clone())
        }
        ("GET", ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            match cluster.leases.get(&(ns.to_string(), name.to_string())) {
                Some(lease) => ok(lease.clone()),
                None => not_found("leases.coordination.k8s.io", name),
            }
        }
        ("POST", ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases"]) => {
            let name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let key = (ns.to_string(), name.clone());
            if cluster.leases.contains_key(&key) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("leases.coordination.k8s.io \"{name}\" already exists"),
                );
            }
            let mut lease = cluster.stamp(body);
            lease["metadata"]["namespace"] = json!(ns);
            cluster.leases.insert(key, lease.clone());
            respond(StatusCode::CREATED, &lease)
        }
        ("PUT", ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            let key = (ns.to_string(), name.to_string());
            let Some(current) = cluster.leases.get(&key) else {
                return not_found("leases.coordination.k8s.io", name);
            };
            // A replace must carry the version it read: the optimistic lock leader election relies on.
            if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return conflict(name);
            }
            let lease = cluster.stamp(body);
            cluster.leases.insert(key, lease.clone());
            ok(lease)
        }
        ("POST", ["apis", "events.k8s.io", "v1", "namespaces", ns, "events"]) => {
            let mut event = body;
            let name = event["metadata"]["name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("event-{}", cluster.resource_version));
            event["metadata"]["name"] = json!(name);
            event["metadata"]["namespace"] = json!(ns);
            cluster.events.insert((ns.to_string(), name), event.clone());
            respond(StatusCode::CREATED, &event)
        }
        ("PATCH", ["apis", "events.k8s.io", "v1", "namespaces", ns, "events", name]) => {
            match cluster.events.get_mut(&(ns.to_string(), name.to_string())) {
                Some(event) => {
                    merge(event, &body);
                    ok(event.clone())
                }
                None => not_found("events.events.k8s.io", name),
            }
        }
        _ => not_found("resource", &path),
    }
}

impl Cluster {
    fn deployment(&self, ns: &str, name: &str) -> Option<&Value> {
        self.deployments.get(&(ns.to_owned(), name.to_owned()))
    }

    fn write_scale(
        &mut self,
        ns: &str,
        name: &str,
        body: &Value,
        method: &'static str,
        field_manager: Option<String>,
        token: Option<String>,
    ) -> Response {
        let key = (ns.to_owned(), name.to_owned());
        let Some(current_version) = self.deployments.get(&key).map(|d| d["metadata"]["resourceVersion"].clone()) else {
            return not_found("deployments.apps", name);
        };
        if self.conflicts_to_inject > 0 {
            self.conflicts_to_inject -= 1;
            self.bump_deployment(&key);
            return conflict(name);
        }
        let precondition = &body["metadata"]["resourceVersion"];
        if !precondition.is_null() && *precondition != current_version {
            return conflict(name);
        }
        let Some(replicas) = body["spec"]["replicas"].as_i64() else {
            return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "spec.replicas: Required value");
        };
        let at = std::time::Instant::now();
        let write =
            ScaleWrite { namespace: ns.to_owned(), name: name.to_owned(), replicas, method, field_manager, token, at };
        self.scale_writes.push(write);
        let version = self.bump();
        let d = self.deployments.get_mut(&key).expect("checked above");
        d["spec"]["replicas"] = json!(replicas);
        d["status"]["replicas"] = json!(replicas);
        d["metadata"]["resourceVersion"] = json!(version.to_string());
        ok(scale_of(d))
    }

    fn bump_deployment(&mut self, key: &(String, String)) {
        let version = self.bump();
        if let Some(d) = self.deployments.get_mut(key) {
            d["metadata"]["resourceVersion"] = json!(version.to_string());
        }
    }
}

fn field_manager(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| pair.strip_prefix("fieldManager=")).map(str::to_owned)
}

/// The `autoscaling/v1` Scale of a Deployment.
fn scale_of(d: &Value) -> Value {
    let selector = d["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")
        })
        .unwrap_or_default();
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": d["metadata"]["name"], "namespace": d["metadata"]["namespace"],
            "uid": d["metadata"]["uid"], "resourceVersion": d["metadata"]["resourceVersion"],
        },
        "spec": { "replicas": d["spec"]["replicas"] },
        "status": { "replicas": d["status"]["replicas"], "selector": selector },
    })
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn ok(value: Value) -> Response {
    respond(StatusCode::OK, &value)
}

fn not_found(resource: &str, name: &str) -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", &format!("{resource} \"{name}\" not found"))
}

fn conflict(name: &str) -> Response {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on deployments.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        ),
    )
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    respond(code, &body)
}

fn respond(code: StatusCode, body: &Value) -> Response {
    (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
