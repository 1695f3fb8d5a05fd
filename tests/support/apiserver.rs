//! A test Kubernetes API server: real HTTP, the real JSON shapes, for the calls the daemon makes.
//!
//! It serves Deployments and their `scale` subresource (GET, merge/apply/strategic PATCH, PUT,
//! with `resourceVersion` preconditions and 409s), `events.k8s.io/v1` Events (create, patch), and
//! `Status` 404s for anything else. Every request and every scale write is recorded so tests can
//! assert what the daemon did. The daemon reaches it through an ordinary kubeconfig.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

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
}

/// A request as received: method and path with query.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
}

#[derive(Default)]
struct Cluster {
    resource_version: u64,
    deployments: BTreeMap<(String, String), Value>,
    events: BTreeMap<(String, String), Value>,
    scale_writes: Vec<ScaleWrite>,
    requests: Vec<Request>,
    /// Scale writes still to be answered with 409 (as if someone else wrote first).
    conflicts_to_inject: usize,
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
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: test\n  user:\n    token: test-token\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\n",
            self.url
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
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
}

impl Cluster {
    fn bump(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }
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
            cluster.write_scale(ns, name, &body, kind, field_manager(query))
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
        self.scale_writes.push(ScaleWrite {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            replicas,
            method,
            field_manager,
        });
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
