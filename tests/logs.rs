//! Logs: one JSON object per line with `--log-json`, and never a password, whatever fails.

mod support;

use std::time::Duration;

use support::daemon::{Daemon, free_port, run};
use support::eventually;

const SECRET: &str = "s3cret-Pa55";

/// Sources whose URLs carry a password, on ports where nothing listens: every poll fails, and
/// the failures are logged.
fn config(port: u16) -> String {
    let dead = free_port();
    format!(
        r#"
[daemon]
interval = "1s"
listen = "127.0.0.1:{port}"

[sources.broker]
kind = "celery"
url = "redis://worker:{SECRET}@127.0.0.1:{dead}/0"
queues = ["default"]
timeout = "500ms"

[sources.metadata]
kind = "airflow"
url = "postgres://airflow:{SECRET}@127.0.0.1:{dead}/airflow"
timeout = "500ms"

[[targets]]
name = "workers"
deployment = "worker"
max_replicas = 5
triggers = [{{ source = "broker", per_replica = 10 }}, {{ source = "metadata", per_replica = 16 }}]
"#
    )
}

#[tokio::test]
async fn json_logs_never_show_a_password() {
    let daemon = Daemon::start(&config(free_port()), &["run", "--dry-run", "--log-json"], None, &[]);
    eventually(Duration::from_secs(20), "failed polls in the log", || {
        let log = daemon.log();
        (log.matches("poll failed").count() >= 4).then_some(())
    })
    .await;
    let log = daemon.log();
    assert!(!log.contains(SECRET), "a password reached the log:\n{log}");
    assert!(log.contains("redis://worker:***@127.0.0.1"), "the redacted URL is shown:\n{log}");
    assert!(log.contains("postgres://airflow:***@127.0.0.1"), "{log}");
    for line in log.lines() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(json["level"].is_string() && json["fields"].is_object(), "{line}");
    }
}

#[test]
fn once_output_and_errors_never_show_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config(free_port())).unwrap();
    for output in ["json", "table"] {
        let out = run(&["once", "--config", path.to_str().unwrap(), "--dry-run", "--output", output], None, &[]);
        assert!(out.status.success());
        let everything = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(everything.contains("could not connect"), "{everything}");
        assert!(!everything.contains(SECRET), "{everything}");
    }
}
