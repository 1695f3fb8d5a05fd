//! A test Kubernetes API server: real HTTP, the real JSON shapes, and the real server's rules for
//! the calls the daemon (and `kubectl`) make. It can also misbehave like a real one.
//!
//! ```text
//! routes ── call (parse) ── faults (take the first matching rule)
//!    │
//!    ├── discovery        /version /api /apis …
//!    ├── verbs            get list create update patch ── validation (422), preconditions (409)
//!    ├── workloads        deployments|statefulsets/scale, StatefulSet pods by ordinal
//!    └── watch            replay, live changes, bookmarks, timeouts, 410 after compaction
//!          all over store (objects, one resourceVersion, history, feed) and record (requests)
//! ```
//!
//! Served: Deployments and StatefulSets (apps/v1) with their `scale` subresource, Pods and Nodes
//! (v1), Leases (coordination.k8s.io/v1) and Events (events.k8s.io/v1): get, list and watch with
//! label and field selectors, create, update (PUT) and merge/strategic/apply PATCH. Anything else
//! gets the real server's 404 or 405 `Status`. The daemon and `kubectl` reach it through an
//! ordinary kubeconfig. See `faults.rs` for injected faults, `fixtures.rs` for setting up a cluster.

mod call;
mod discovery;
mod faults;
mod fixtures;
mod objects;
mod record;
mod resource;
mod routes;
mod selector;
mod status;
mod store;
mod validation;
mod verbs;
mod watch;
mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use serde_json::Value;

#[allow(unused_imports)] // each test file uses a different subset
pub use faults::{Calls, Change};
pub use record::{Request, ScaleWrite};
use store::{Feed, Shared, Store};

/// A running test API server; stops (and ends its watches) when dropped.
pub struct ApiServer {
    pub url: String,
    store: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.lock().broadcast(Feed::Close);
        self.task.abort();
    }
}

impl ApiServer {
    pub async fn start() -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the test API server");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let store = Arc::new(Mutex::new(Store::default()));
        let app = Router::new().fallback(routes::handle).with_state(store.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ApiServer { url: format!("http://{addr}"), store, task }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        store::lock(&self.store)
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

    /// A kube-rs client of this server that shows every answer as it came: without kube's default
    /// retries (which repeat 429, 503 and 504 answers, waiting out `Retry-After`).
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("the server's URL"));
        config.default_retry = false;
        kube::Client::try_from(config).expect("a client of the test API server")
    }

    /// Every request so far, in arrival order, with its answer.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The requests that `calls` describes, in arrival order.
    pub fn requests_to(&self, calls: &Calls) -> Vec<Request> {
        self.lock().requests.iter().filter(|r| r.is(calls)).cloned().collect()
    }

    /// Every successful write to replicas through a `scale` subresource.
    pub fn scale_writes(&self) -> Vec<ScaleWrite> {
        self.lock().scale_writes.clone()
    }

    /// Every successful pod PATCH: (namespace, name, body).
    pub fn pod_patches(&self) -> Vec<(String, String, Value)> {
        let patches = self.requests_to(&Calls::patch("pods"));
        let done = patches.into_iter().filter(Request::succeeded);
        done.map(|r| (r.namespace.unwrap_or_default(), r.name.unwrap_or_default(), r.body)).collect()
    }
}
