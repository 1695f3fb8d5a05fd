//! `rediss://`: the Celery source over TLS to a real redis-server, with a CA of the test's own
//! that the daemon trusts through `SSL_CERT_FILE` (read by rustls-native-certs).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::daemon::{free_port, run};
use support::tls::{Server, certificates, wait_listening};

fn start_tls_redis(dir: &Path, port: u16) -> Server {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let server = Server(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-cert-file", &path("server.pem"), "--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.pem"), "--tls-auth-clients", "no", "--requirepass", "tls-secret"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed, built with TLS (Debian's is)"),
    );
    wait_listening(port, "TLS redis-server");
    server
}

fn config(dir: &Path, url: &str) -> String {
    let text = format!(
        "[sources.jobs]\nkind = \"celery\"\nurl = \"{url}\"\nqueues = [\"tls-q\"]\n\n[[targets]]\nname = \"w\"\ndeployment = \"w\"\nmax_replicas = 10\ntriggers = [{{ source = \"jobs\", per_replica = 1 }}]\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn once(config: &str, ca: &str) -> Value {
    let out = run(&["once", "--config", config, "--dry-run", "--output", "json"], None, &[("SSL_CERT_FILE", ca)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn rediss_reads_queues_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let _server = start_tls_redis(dir.path(), port);
    let cli = Command::new("redis-cli")
        .args([
            "--tls",
            "--cacert",
            &dir.path().join("ca.pem").to_string_lossy(),
            "-p",
            &port.to_string(),
            "-a",
            "tls-secret",
        ])
        .args(["--no-auth-warning", "RPUSH", "tls-q", "a", "b", "c"])
        .output()
        .expect("redis-cli");
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let ca = dir.path().join("ca.pem").to_string_lossy().into_owned();

    let report = once(&config(dir.path(), &format!("rediss://:tls-secret@localhost:{port}/0")), &ca);
    assert_eq!(report[0]["triggers"][0]["value"], 3.0, "{report}");

    // Plain redis:// to a TLS port fails as a poll error, and the password stays hidden.
    let report = once(&config(dir.path(), &format!("redis://:tls-secret@localhost:{port}/0")), &ca);
    let error = report[0]["triggers"][0]["error"].as_str().expect("an error");
    assert!(!error.contains("tls-secret"), "{error}");

    // A certificate the daemon does not trust is refused.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let untrusted = other.path().join("ca.pem").to_string_lossy().into_owned();
    let report = once(&config(dir.path(), &format!("rediss://:tls-secret@localhost:{port}/0")), &untrusted);
    assert_eq!(report[0]["triggers"][0]["value"], Value::Null, "{report}");
}
