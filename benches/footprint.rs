//! The daemon's footprint: resident memory and CPU of the real release binary (`run`), polling the
//! local Redis and writing to the test API server, at the default poll interval, at 1 s polls,
//! and with 50 targets at 1 s polls. The first row (one target at the default 15 s) is the
//! baseline the others are compared with; KEDA's published requests are printed beside them
//! for reference (not measured here: no cluster on these machines).
//!
//! `cargo bench --bench footprint` (needs Redis on 127.0.0.1:6379, or TEST_REDIS_URL)
//!
//! The manifests' requests and limits (deploy/deployment.yaml) are sized from these figures.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::apiserver::ApiServer;
use support::daemon::{Daemon, cpu_millis, free_port, http_get, status_field};
use support::eventually;

/// CPU is sampled over this many windows of this length, after the warm-up.
const WINDOWS: usize = 3;
const WINDOW: Duration = Duration::from_secs(15);
const WARMUP: Duration = Duration::from_secs(5);

struct Scenario {
    name: &'static str,
    targets: usize,
    queues_per_source: usize,
    interval: &'static str,
}

/// What one scenario measured.
struct Footprint {
    name: &'static str,
    rss_kib: u64,
    peak_rss_kib: u64,
    threads: u64,
    /// CPU per window, in millicores (ms of CPU per s of wall time).
    millicores: Vec<f64>,
}

fn main() {
    let scenarios = [
        Scenario {
            name: "baseline: 1 target, polls every 15 s (default)",
            targets: 1,
            queues_per_source: 1,
            interval: "15s",
        },
        Scenario { name: "1 target, polls every 1 s", targets: 1, queues_per_source: 1, interval: "1s" },
        Scenario {
            name: "50 targets × 10 queues, polls every 1 s",
            targets: 50,
            queues_per_source: 10,
            interval: "1s",
        },
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let results: Vec<Footprint> = scenarios.iter().map(|s| runtime.block_on(measure(s))).collect();
    report(&results);
}

async fn measure(scenario: &Scenario) -> Footprint {
    let prefix = format!("bench-footprint-{}-{}:", std::process::id(), scenario.targets);
    fill_queues(&prefix, scenario).await;
    let api = ApiServer::start().await;
    for i in 0..scenario.targets {
        api.add_deployment("data", &format!("worker-{i}"), 1);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = config(scenario, &prefix, port);
    let daemon = Daemon::start(&config, &["run"], Some(&api.kubeconfig(dir.path())), &[]);
    eventually(Duration::from_secs(30), "the daemon to become ready", || {
        http_get(port, "/readyz").filter(|(status, _)| *status == 200)
    })
    .await;
    tokio::time::sleep(WARMUP).await;

    let pid = daemon.pid();
    let mut millicores = Vec::new();
    for _ in 0..WINDOWS {
        let (cpu_before, wall_before) = (cpu_millis(pid), Instant::now());
        tokio::time::sleep(WINDOW).await;
        let cpu_seconds = (cpu_millis(pid) - cpu_before) / 1000.0;
        millicores.push(cpu_seconds / wall_before.elapsed().as_secs_f64() * 1000.0);
    }
    support::redis::clean(&mut support::redis::connect().await, &prefix).await;
    assert!(
        api.scale_writes().iter().any(|w| w.replicas > 1),
        "{}: the daemon never scaled up; log:\n{}",
        scenario.name,
        daemon.log()
    );
    Footprint {
        name: scenario.name,
        rss_kib: status_field(pid, "VmRSS:"),
        peak_rss_kib: status_field(pid, "VmHWM:"),
        threads: status_field(pid, "Threads:"),
        millicores,
    }
}

/// One Celery source per target, each on its own queues, each queue holding 40 messages
/// (4 replicas wanted at 10 per replica), so that every cycle polls, decides and has something
/// to say.
fn config(scenario: &Scenario, prefix: &str, port: u16) -> String {
    let url = support::redis::url();
    let mut text = format!(
        "[daemon]\ninterval = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\n\
         [daemon.leader_election]\nenabled = true\nnamespace = \"ops\"\n\n",
        scenario.interval
    );
    for t in 0..scenario.targets {
        let queues: Vec<String> = (0..scenario.queues_per_source).map(|q| format!("\"q{t}-{q}\"")).collect();
        text += &format!(
            "[sources.s{t}]\nkind = \"celery\"\nurl = \"{url}\"\nqueues = [{}]\nglobal_keyprefix = \"{prefix}\"\n\n\
             [[targets]]\nname = \"t{t}\"\nnamespace = \"data\"\ndeployment = \"worker-{t}\"\n\
             min_replicas = 1\nmax_replicas = 20\ntriggers = [{{ source = \"s{t}\", per_replica = {} }}]\n\n",
            queues.join(", "),
            10 * scenario.queues_per_source,
        );
    }
    text
}

async fn fill_queues(prefix: &str, scenario: &Scenario) {
    let mut redis = support::redis::connect().await;
    support::redis::clean(&mut redis, prefix).await;
    for t in 0..scenario.targets {
        for q in 0..scenario.queues_per_source {
            support::redis::push(&mut redis, &format!("{prefix}q{t}-{q}"), &format!("q{t}-{q}"), 40).await;
        }
    }
}

fn report(results: &[Footprint]) {
    println!("\nfootprint of `queue-autoscaler run` (release build), {WINDOWS} windows of {WINDOW:?} each");
    println!("{:<52} {:>10} {:>10} {:>8} {:>14} {:>10}", "", "RSS", "peak RSS", "threads", "CPU (median)", "vs base");
    let base = median(&results[0].millicores);
    for r in results {
        let cpu = median(&r.millicores);
        println!(
            "{:<52} {:>7.1} MiB {:>6.1} MiB {:>8} {:>9.3} mcore {:>9.1}x",
            r.name,
            r.rss_kib as f64 / 1024.0,
            r.peak_rss_kib as f64 / 1024.0,
            r.threads,
            cpu,
            cpu / base,
        );
    }
    println!(
        "{:<52} {:>10} {:>10} {:>8} {:>14}",
        "reference: KEDA Helm chart requests, per component ×3", "100 MiB", "", "", "100 mcore"
    );
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
