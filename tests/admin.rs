//! The admin port tells no more than it must: `/readyz` says leader or standby, and names the pod
//! holding the lease only with `daemon.admin_details = true`.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;
use support::apiserver::ApiServer;
use support::daemon::{Daemon, free_port, http_get};
use support::toml::Toml;
use support::{eventually, redis, unique};

const HOLDER: &str = "someone-elses-pod-7f9c";

/// POSTs JSON to the test API server (as another replica would, through its client).
fn post(api: &ApiServer, path: &str, body: &serde_json::Value) {
    let address = api.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("the test API server");
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 201") || response.starts_with("HTTP/1.1 201"), "{response}");
}

/// One Celery source, one target on data/worker; leader election on `ops` at the default timings
/// (another replica holds the lease for an hour).
fn config(port: u16, queue: &str, details: bool) -> String {
    let election = "[daemon.leader_election]\nenabled = true\nnamespace = \"ops\"";
    Toml::daemon(port)
        .raw(&format!("admin_details = {details}\n\n{election}"))
        .celery("jobs", queue)
        .target("workers", "data", "worker")
        .max_replicas(3)
        .per_replica("jobs", 10)
        .render()
}

// Multi-threaded: `post` blocks its thread while the test API server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_the_leader_only_with_admin_details() {
    let _ = redis::connect().await;
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    // Another replica holds the lease for an hour: this daemon stays a standby.
    // A MicroTime: microseconds, as the API server requires (six fractional digits).
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "queue-autoscaler", "namespace": "ops" },
        "spec": { "holderIdentity": HOLDER, "leaseDurationSeconds": 3600, "acquireTime": now, "renewTime": now },
    });
    post(&api, "/apis/coordination.k8s.io/v1/namespaces/ops/leases", &lease);
    let dir = tempfile::tempdir().unwrap();
    for (details, expected) in [(false, "ready: standby\n"), (true, &*format!("ready: standby (leader: {HOLDER})\n"))] {
        let port = free_port();
        let daemon = Daemon::start(
            &config(port, &unique("admin"), details),
            &["run"],
            Some(&api.kubeconfig(dir.path())),
            &[("POD_NAME", "this-pod")],
        );
        let body = eventually(Duration::from_secs(20), "a ready standby", || {
            http_get(port, "/readyz").filter(|(code, _)| *code == 200).map(|(_, body)| body)
        })
        .await;
        assert_eq!(body, expected, "admin_details = {details}; log:\n{}", daemon.log());
    }
}
