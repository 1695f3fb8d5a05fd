//! One daemon following Celery's event stream: 50 workers × 100 tasks/s, as the workers' event
//! dispatchers would publish it on Redis (kombu's fanout channel, the real message envelope),
//! against the same daemon with `events = false` under the same traffic (the baseline).
//!
//! `cargo bench --bench celery_events` (needs Redis on 127.0.0.1:6379, or TEST_REDIS_URL)
//!
//! Each task is two messages, as a worker buffers its task events (`task.multi`): one with its
//! `task-received` and `task-started`, one with its `task-succeeded`; each worker sends a
//! `worker-heartbeat` every 2 s. 5,000 tasks/s is 10,000 messages (15,000 events) a second.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use support::daemon::{Daemon, cpu_millis, free_port, http_get, try_status_field};
use support::eventually;
use support::toml::Toml;

const WORKERS: usize = 50;
const TASKS_PER_SECOND: usize = 100;
/// Messages are published in ticks of this length.
const TICK: Duration = Duration::from_millis(10);
const WINDOWS: usize = 3;
const WINDOW: Duration = Duration::from_secs(15);
const WARMUP: Duration = Duration::from_secs(5);

struct Measured {
    name: &'static str,
    rss_kib: u64,
    peak_rss_kib: u64,
    millicores: Vec<f64>,
    /// Messages published per second, and the most Redis held for the daemon (its output buffer).
    published: f64,
    max_backlog_bytes: u64,
    workers_heard: Option<String>,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut results = vec![
        runtime.block_on(daemon("baseline: events = false, same traffic", false)),
        runtime.block_on(daemon("events = true: 50 workers × 100 tasks/s", true)),
    ];
    match runtime.block_on(peer()) {
        Ok(measured) => results.push(measured),
        Err(why) => println!("peer skipped: {why}"),
    }
    report(&results);
}

/// The daemon (`run --dry-run`) with one Celery source on the traffic's broker.
async fn daemon(name: &'static str, events: bool) -> Measured {
    let prefix = format!("bench-events-{}-{events}:", std::process::id());
    let port = free_port();
    let daemon = Daemon::start(&config(&prefix, port, events), &["run", "--dry-run"], None, &[]);
    eventually(Duration::from_secs(30), "the daemon to become ready", || {
        http_get(port, "/readyz").filter(|(status, _)| *status == 200)
    })
    .await;
    let mut measured = follow(name, daemon.pid(), &prefix).await;
    measured.workers_heard = http_get(port, "/metrics").and_then(|(_, page)| {
        page.lines().find(|l| l.starts_with("queue_autoscaler_celery_event_workers")).map(str::to_owned)
    });
    if events {
        let heard = measured.workers_heard.as_deref().unwrap_or("");
        assert!(heard.ends_with(&format!(" {WORKERS}")), "the daemon did not hear every worker: {heard:?}");
    }
    measured
}

/// Celery's own consumer (`EventReceiver` into `State`, as Flower runs it) on the same traffic.
async fn peer() -> Result<Measured, String> {
    let prefix = format!("bench-events-{}-peer:", std::process::id());
    let script = format!("{}/benches/peers/celery_events_state.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new("python3")
        .args([script.as_str(), &support::redis::url(), &prefix])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 could not start: {e}"))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Ok(Some(status)) = child.try_wait() {
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr);
        return Err(format!("the Celery peer exited ({status}): {}", stderr.lines().last().unwrap_or("")));
    }
    let mut measured = follow("peer: Celery's EventReceiver + State (Flower's core)", child.id(), &prefix).await;
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or("").to_owned();
    measured.workers_heard = Some(if alive { said } else { format!("exited during the run: {said}") });
    Ok(measured)
}

/// Publishes the traffic to `prefix`'s channel while measuring the process `pid` following it.
async fn follow(name: &'static str, pid: u32, prefix: &str) -> Measured {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn(publish(prefix.to_owned(), stop.clone()));
    tokio::time::sleep(WARMUP).await;
    let (mut millicores, mut max_backlog_bytes) = (Vec::new(), 0);
    for _ in 0..WINDOWS {
        let (cpu_before, wall_before) = (cpu_millis(pid), Instant::now());
        while wall_before.elapsed() < WINDOW {
            tokio::time::sleep(Duration::from_millis(500)).await;
            max_backlog_bytes = max_backlog_bytes.max(pubsub_output_bytes().await);
        }
        let cpu_seconds = (cpu_millis(pid) - cpu_before) / 1000.0;
        millicores.push(cpu_seconds / wall_before.elapsed().as_secs_f64() * 1000.0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.await.expect("publisher");
    let measured = Measured {
        name,
        rss_kib: try_status_field(pid, "VmRSS:").unwrap_or(0),
        peak_rss_kib: try_status_field(pid, "VmHWM:").unwrap_or(0),
        millicores,
        published,
        max_backlog_bytes,
        workers_heard: None,
    };
    support::redis::clean(&mut support::redis::connect().await, prefix).await;
    measured
}

fn config(prefix: &str, port: u16, events: bool) -> String {
    Toml::daemon(port)
        .celery("events", "work")
        .raw(&format!("global_keyprefix = \"{prefix}\"\nevents = {events}"))
        .target("workers", "data", "worker")
        .bounds(1, 60)
        .per_replica("events", 4)
        .render()
}

/// kombu's envelope around one event body (or a list of them), as a worker publishes it.
fn envelope(body: &serde_json::Value, hostname: &str, routing_key: &str) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(body.to_string());
    json!({
        "body": body, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"hostname": hostname},
        "properties": {
            "delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
            "priority": 0, "body_encoding": "base64", "delivery_tag": "5d2c8a9e-4b1f-4a57-9b8e-0c6f0e1d2a3b",
        },
    })
    .to_string()
}

/// One worker's messages: a task received and started, a task succeeded, a heartbeat.
fn messages(worker: usize) -> [String; 3] {
    let hostname = format!("celery@worker-{worker}");
    let task = |kind: &str| {
        json!({
            "hostname": hostname, "utcoffset": 0, "pid": 7, "clock": 10, "type": kind,
            "uuid": "627e4001-6f0d-4791-ab9d-3d78180d6176", "name": "proj.tasks.work", "args": "[0.01]",
            "kwargs": "{}", "root_id": "627e4001-6f0d-4791-ab9d-3d78180d6176", "parent_id": null,
            "retries": 0, "eta": null, "expires": null, "timestamp": 1796348960.9, "runtime": 0.01,
        })
    };
    let beat = json!({
        "hostname": hostname, "utcoffset": 0, "pid": 7, "clock": 11, "freq": 2.0, "active": 1,
        "processed": 1000, "loadavg": [0.5, 0.5, 0.5], "sw_ident": "py-celery", "sw_ver": "5.7.0",
        "sw_sys": "Linux", "timestamp": 1796348961.2, "type": "worker-heartbeat",
    });
    [
        envelope(&json!([task("task-received"), task("task-started")]), &hostname, "task.multi"),
        envelope(&json!([task("task-succeeded")]), &hostname, "task.multi"),
        envelope(&beat, &hostname, "worker.heartbeat"),
    ]
}

/// Publishes the workers' traffic until `stop`; returns the messages published per second.
async fn publish(prefix: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> f64 {
    let mut redis = support::redis::connect().await;
    let workers: Vec<[String; 3]> = (0..WORKERS).map(messages).collect();
    let channel = |routing_key: &str| format!("{prefix}/0.celeryev/{routing_key}");
    let (task_channel, beat_channel) = (channel("task.multi"), channel("worker.heartbeat"));
    let per_tick = TASKS_PER_SECOND as f64 * TICK.as_secs_f64();
    let (started, mut ticks, mut sent, mut due) = (Instant::now(), 0u64, 0u64, 0.0);
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        interval.tick().await;
        ticks += 1;
        due += per_tick;
        let mut pipe = redis::pipe();
        while due >= 1.0 {
            due -= 1.0;
            for [received_started, succeeded, _] in &workers {
                pipe.cmd("PUBLISH").arg(&task_channel).arg(received_started).ignore();
                pipe.cmd("PUBLISH").arg(&task_channel).arg(succeeded).ignore();
                sent += 2;
            }
        }
        // Heartbeats every 2 s, spread over the workers.
        let beat_every = (Duration::from_secs(2).as_millis() / TICK.as_millis()) as u64;
        for (i, [_, _, beat]) in workers.iter().enumerate() {
            if (ticks + i as u64).is_multiple_of(beat_every) {
                pipe.cmd("PUBLISH").arg(&beat_channel).arg(beat).ignore();
                sent += 1;
            }
        }
        let () = pipe.query_async(&mut redis).await.expect("PUBLISH");
    }
    sent as f64 / started.elapsed().as_secs_f64()
}

/// The largest output buffer Redis holds for a pub/sub client: what the daemon has not read yet.
async fn pubsub_output_bytes() -> u64 {
    let mut redis = support::redis::connect().await;
    let list: String =
        redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub").query_async(&mut redis).await.unwrap();
    list.lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("tot-mem=")).and_then(|v| v.parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
}

fn report(results: &[Measured]) {
    println!("\n`queue-autoscaler run --dry-run` (release build), {WINDOWS} windows of {WINDOW:?} each");
    println!(
        "{:<44} {:>10} {:>10} {:>16} {:>14} {:>16}",
        "", "RSS", "peak RSS", "CPU (median)", "messages/s", "max Redis buffer"
    );
    for r in results {
        let mut cpu = r.millicores.clone();
        cpu.sort_by(f64::total_cmp);
        println!(
            "{:<44} {:>6.1} MiB {:>6.1} MiB {:>10.1} mcore {:>14.0} {:>12} KiB",
            r.name,
            r.rss_kib as f64 / 1024.0,
            r.peak_rss_kib as f64 / 1024.0,
            cpu[cpu.len() / 2],
            r.published,
            r.max_backlog_bytes / 1024,
        );
        println!("  CPU per window: {:?} mcore; {}", r.millicores, r.workers_heard.as_deref().unwrap_or("no gauge"));
    }
}
