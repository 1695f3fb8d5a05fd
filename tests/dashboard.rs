//! The Grafana dashboard and the metrics: every name a panel queries is one the daemon exports;
//! every metric is there from the start (zero where it has no data); a real Prometheus scraping a
//! running daemon gets data for every panel query; `promtool check metrics` accepts /metrics.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use queue_autoscaler::metrics;
use support::daemon::{Daemon, free_port, http_get};
use support::eventually;

const WAIT: Duration = Duration::from_secs(30);
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");

fn dashboard() -> serde_json::Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/queue-autoscaler.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every PromQL expression of the dashboard: panel targets and variable queries.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().unwrap().iter();
    let targets =
        panels.flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()));
    let variables = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["definition"].as_str())
        .map(str::to_owned);
    targets.chain(variables).collect()
}

/// The `queue_autoscaler_*` names an expression uses, histogram suffixes removed.
fn metric_names(expression: &str) -> Vec<String> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| token.starts_with("queue_autoscaler_"))
        .map(|name| {
            ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n)).to_owned()
        })
        .collect()
}

/// The example config in dry-run (no cluster needed), polling every second, on a free port.
fn example_daemon(port: u16) -> Daemon {
    let env = [
        ("QUEUE_AUTOSCALER__DAEMON__LISTEN", format!("127.0.0.1:{port}")),
        ("QUEUE_AUTOSCALER__DAEMON__INTERVAL", "1s".to_owned()),
        ("QUEUE_AUTOSCALER__TARGETS__0__INTERVAL", "1s".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = std::fs::read_to_string(EXAMPLE).unwrap();
    Daemon::start(&config, &["run", "--dry-run"], None, &env)
}

#[test]
fn every_metric_a_panel_queries_is_exported_and_documented() {
    let exported: BTreeSet<&str> = metrics::ALL.into_iter().collect();
    let dashboard = dashboard();
    let mut queried = BTreeSet::new();
    for expression in expressions(&dashboard) {
        for name in metric_names(&expression) {
            assert!(
                exported.contains(name.as_str()),
                "the dashboard queries {name}, which the daemon does not export: {expression}"
            );
            queried.insert(name);
        }
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for name in metrics::ALL {
        assert!(readme.contains(&format!("`{name}`")), "{name} is not documented in the README's metric table");
        assert!(queried.contains(name), "{name} is on no dashboard panel");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_there_from_the_start_and_promtool_accepts_them() {
    let port = free_port();
    let daemon = example_daemon(port);
    let page =
        eventually(WAIT, "/metrics", || http_get(port, "/metrics").filter(|(c, _)| *c == 200).map(|(_, b)| b)).await;
    for name in metrics::ALL {
        assert!(page.lines().any(|l| l.starts_with(name)), "{name} is not registered at start:\n{page}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool is needed ({e}): apt-get install prometheus"));
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
    drop(daemon);
}

/// A real Prometheus, scraping one target every second.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: queue-autoscaler\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus is needed ({e}): apt-get install prometheus"));
        Prometheus { child, port, _dir: dir }
    }

    /// The result vector of an instant query.
    fn query(&self, expression: &str) -> Option<Vec<serde_json::Value>> {
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={}", encode(expression)))?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        assert_eq!(status, 200, "{expression}: {body}");
        json["data"]["result"].as_array().cloned()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A panel query as Grafana would send it with every variable at "All".
fn as_grafana_sends_it(expression: &str) -> String {
    expression
        .replace("$__rate_interval", "15s")
        .replace("$namespace", ".*")
        .replace("$target", ".*")
        .replace("$source", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_a_real_prometheus() {
    let port = free_port();
    let _daemon = example_daemon(port);
    let prometheus = Prometheus::start(port);
    eventually(WAIT, "Prometheus scraping the daemon", || {
        prometheus.query("up{job=\"queue-autoscaler\"} == 1").filter(|r| !r.is_empty())
    })
    .await;
    // Rates need two samples inside their window.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expression = as_grafana_sends_it(target["expr"].as_str().unwrap());
            let result = eventually(Duration::from_secs(10), &format!("data for {:?}", panel["title"]), || {
                prometheus.query(&expression).filter(|r| !r.is_empty())
            })
            .await;
            assert!(!result.is_empty(), "{expression}");
        }
    }
}
