//! `amqps://`: the Celery source over TLS to the machine's RabbitMQ, through a TLS-terminating
//! socat in front of it, with a CA of the test's own that the daemon trusts through
//! `SSL_CERT_FILE` (read by rustls-native-certs).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::daemon::{free_port, run};
use support::rabbitmq;
use support::tls::{Server, certificates, wait_listening};
use support::unique;

/// socat terminating TLS on `port` (with the test certificate) and forwarding to the broker.
fn start_tls_front(dir: &Path, port: u16) -> Server {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let listen = format!(
        "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
        path("server.pem"),
        path("server.key")
    );
    let front = Server(
        Command::new("socat")
            .args([listen, format!("TCP:{}", rabbitmq::broker_address())])
            .stderr(Stdio::null())
            .spawn()
            .expect("socat must be installed (Debian package socat; scripts/test.sh installs it)"),
    );
    wait_listening(port, "socat");
    front
}

fn once(dir: &Path, url: &str, queue: &str, ca: &str) -> Value {
    let text = format!(
        "[sources.jobs]\nkind = \"celery\"\nurl = \"{url}\"\nqueues = [\"{queue}\"]\n\n[[targets]]\nname = \"w\"\n\
         deployment = \"w\"\nmax_replicas = 10\ntriggers = [{{ source = \"jobs\", per_replica = 1 }}]\n"
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    let config = config.to_string_lossy().into_owned();
    let out = run(&["once", "--config", &config, "--dry-run", "--output", "json"], None, &[("SSL_CERT_FILE", ca)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_reads_queues_over_verified_tls() {
    let (_connection, channel) = rabbitmq::channel().await;
    let queue = unique("amqps-q");
    let _cleanup = rabbitmq::Cleanup(vec![queue.clone()]);
    rabbitmq::fill(&channel, &[(queue.clone(), 3)]).await;
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let _front = start_tls_front(dir.path(), port);
    let ca = dir.path().join("ca.pem").to_string_lossy().into_owned();

    let url = format!("amqps://guest:guest@localhost:{port}/%2f");
    let report = once(dir.path(), &url, &queue, &ca);
    assert_eq!(report[0]["triggers"][0]["value"], 3.0, "{report}");

    // A certificate the daemon does not trust is refused, and the password stays hidden.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let untrusted = other.path().join("ca.pem").to_string_lossy().into_owned();
    let report = once(dir.path(), &url, &queue, &untrusted);
    assert_eq!(report[0]["triggers"][0]["value"], Value::Null, "{report}");
    let error = report[0]["triggers"][0]["error"].as_str().expect("an error");
    assert!(!error.contains("guest:guest"), "{error}");
}
