//! The `validate` and `once` commands of the real binary.

mod support;

use serde_json::Value;
use support::daemon::run;
use support::redis::{self as test_redis, push};
use support::scenario::Scenario;
use support::toml::Toml;
use support::unique;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");

fn write_config(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// A Celery source whose broker URL is in `TEST_BROKER_URL`, and a target on data/worker
/// (16 per replica, `min`..=20).
fn config(queue: &str, min: u32) -> String {
    Toml::new()
        .source("jobs", "celery")
        .raw(&format!("url_env = \"TEST_BROKER_URL\"\nqueues = [\"{queue}\"]"))
        .target("workers", "data", "worker")
        .bounds(min, 20)
        .per_replica("jobs", 16)
        .render()
}

#[test]
fn validate_accepts_the_example() {
    let out = run(&["validate", "--config", EXAMPLE], None, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (4 sources, 3 targets)"));
}

#[test]
fn validate_lists_every_problem_with_key_path_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("q", 30).replace("per_replica = 16", "per_replica = 16, activaton = 1")
        + "\n[daemon]\nlisten = \"nowhere\"\n";
    let path = write_config(dir.path(), &text);
    let out = run(&["validate", "--config", &path], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = [
        format!("{path}: line 4: sources.jobs.url_env: environment variable TEST_BROKER_URL is not set"),
        format!("{path}: line 11: targets[0].min_replicas: 30 is above max_replicas 20"),
        format!("{path}: line 13: targets[0].triggers[0].activaton: unknown key"),
        format!("{path}: line 16: daemon.listen: \"nowhere\" is not an address such as \"0.0.0.0:9090\""),
    ];
    assert_eq!(lines, expected, "one line per problem, in file order");
}

#[test]
fn validate_reports_an_unreadable_file() {
    let out = run(&["validate", "--config", "/nonexistent/config.toml"], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/config.toml"));
}

#[tokio::test]
async fn once_dry_run_without_a_cluster_prints_json_with_current_null() {
    let mut redis = test_redis::connect().await;
    let queue = unique("cli-once");
    push(&mut redis, &queue, &queue, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config(&queue, 1));
    let out = run(
        &["once", "--config", &path, "--dry-run", "--output", "json"],
        None,
        &[("TEST_BROKER_URL", &test_redis::url())],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let target = &json[0];
    assert_eq!(target["target"], "workers");
    assert_eq!(target["namespace"], "data");
    assert_eq!(target["deployment"], "worker");
    assert_eq!(target["current"], Value::Null);
    // 40 / 16 → 3 wanted; treated as starting from min_replicas 1, +4 pods allows it.
    assert_eq!(target["desired"], 3);
    assert_eq!(target["reason"], "jobs=40 → 3 wanted");
    let trigger = &target["triggers"][0];
    assert_eq!((trigger["source"].as_str(), trigger["kind"].as_str()), (Some("jobs"), Some("celery")));
    assert_eq!((trigger["value"].as_f64(), trigger["recommended"].as_u64()), (Some(40.0), Some(3)));
    assert_eq!(trigger["error"], Value::Null);
    let () = redis::cmd("DEL").arg(&queue).query_async(&mut redis).await.unwrap();
}

#[test]
fn once_reports_a_failed_source_in_its_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config("q", 2));
    let dead = format!("redis://:hunter2@127.0.0.1:{}/0", support::daemon::free_port());
    let out = run(&["once", "--config", &path, "--dry-run", "--output", "json"], None, &[("TEST_BROKER_URL", &dead)]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trigger = &json[0]["triggers"][0];
    assert_eq!((trigger["value"].clone(), trigger["recommended"].clone()), (Value::Null, Value::Null));
    assert!(trigger["error"].as_str().unwrap().starts_with("could not connect"), "{trigger}");
    assert_eq!(json[0]["desired"], 2, "held at min_replicas");
    assert_eq!(json[0]["reason_label"], "held_on_failure");
    let everything = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!everything.contains("hunter2"), "{everything}");
}

#[test]
fn once_without_dry_run_needs_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config("q", 1));
    let out = run(&["once", "--config", &path], None, &[("TEST_BROKER_URL", &test_redis::url())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --dry-run to run without a cluster"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_with_a_cluster_writes_and_prints_a_table() {
    let mut scenario = Scenario::new("cli-once-write", 2).await;
    scenario.push(100).await;
    let Scenario { queue, api, dir, .. } = &scenario;
    let path = write_config(dir.path(), &config(queue, 1));
    let kubeconfig = api.kubeconfig(dir.path());
    let broker = test_redis::url();
    let out = tokio::task::spawn_blocking(move || {
        run(&["once", "--config", &path], Some(&kubeconfig), &[("TEST_BROKER_URL", &broker)])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    // 100 / 16 → 7 wanted; from 2: max(2 + 4, 2 × 2) = 6.
    assert!(table.contains("workers  data       deployment/worker  2        6        jobs=100 → 7 wanted, capped by scale-up policy pods=4/15s → 6"), "{table}");
    assert_eq!(api.replicas("data", "worker"), 6);
    scenario.drain().await;
}
