//! The real `queue-autoscaler` binary, run as a child process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_queue-autoscaler");

/// Leader election on the Lease `ops/queue-autoscaler`, with timings short enough for tests; the
/// last section of a `[daemon]` (keys after it belong to it), which needs a `kube_timeout` under
/// the 3 s lease (`kube_timeout = "1s"`).
pub const LEADER_ELECTION: &str = r#"
[daemon.leader_election]
enabled = true
namespace = "ops"
lease_duration = "3s"
renew_deadline = "2s"
retry_period = "500ms"
"#;

/// A free TCP port on 127.0.0.1 (free when asked; the daemon binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Runs the binary to completion with `args`, in an environment without any kubeconfig unless
/// `kubeconfig` is given.
pub fn run(args: &[&str], kubeconfig: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut command = command(kubeconfig, env);
    command.args(args).output().expect("run queue-autoscaler")
}

/// `once --dry-run --output json` on `config` against the cluster of `kubeconfig`, run off the
/// async runtime; its JSON, once it succeeded.
pub async fn once_json(config: &str, kubeconfig: PathBuf) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        run(&["once", "--config", path.to_str().unwrap(), "--dry-run", "--output", "json"], Some(&kubeconfig), &[])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn command(kubeconfig: Option<&Path>, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    // No cluster unless the test gives one: never the developer's own ~/.kube/config.
    command.env_remove("KUBERNETES_SERVICE_HOST").env("HOME", "/nonexistent").env("RUST_LOG", "info");
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env("KUBECONFIG", "/nonexistent/kubeconfig"),
    };
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// A daemon running in the background; killed when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Writes `config` to a file and starts `queue-autoscaler <args…> --config FILE`.
    pub fn start(config: &str, args: &[&str], kubeconfig: Option<&Path>, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        Daemon::spawn(dir, &config_path, args, kubeconfig, env)
    }

    /// Starts `queue-autoscaler <args…> --config PATH` on a config file the test manages.
    pub fn start_with_config_path(
        config: &Path,
        args: &[&str],
        kubeconfig: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Daemon {
        Daemon::spawn(tempfile::tempdir().expect("tempdir"), config, args, kubeconfig, env)
    }

    fn spawn(
        dir: tempfile::TempDir,
        config: &Path,
        args: &[&str],
        kubeconfig: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = dir.path().join("daemon.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = command(kubeconfig, env)
            .args(args)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start queue-autoscaler");
        Daemon { child, log, dir }
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!("daemon did not stop within 20 s of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the process dies without any cleanup (no lease release).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal (`HUP`, `TERM`, …) by name.
    pub fn signal(&self, name: &str) {
        Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().expect("kill");
    }

    /// The process id, to read its footprint from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `http://127.0.0.1:{port}{path}`: (status, body). `None` while nothing listens.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // HTTP/1.0: the answer comes whole, never chunked, and the connection closes after it.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// Cycles the daemon listening on `port` has finished (`queue_autoscaler_loop_seconds_count`).
pub fn cycles(port: u16) -> Option<u64> {
    let (_, page) = http_get(port, "/metrics").filter(|(status, _)| *status == 200)?;
    page.lines().find_map(|l| l.strip_prefix("queue_autoscaler_loop_seconds_count ")?.trim().parse().ok())
}

/// Waits until the daemon on `port` has finished `n` more cycles than when called: how a test
/// checks that something never happens, without guessing a sleep.
pub async fn cycles_pass(port: u16, n: u64) {
    let start = cycles(port).unwrap_or(0);
    let timeout = Duration::from_secs(20 + 5 * n);
    super::eventually(timeout, &format!("{n} more cycles on :{port}"), || cycles(port).filter(|c| *c >= start + n))
        .await;
}

/// The value of the series named exactly `series` (name and labels) in a Prometheus page:
/// `queue_autoscaler_config_reloads_total 1` does not match a 10 or a 1.5.
pub fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in:\n{page}"))
}

/// Replaces `dir/config.toml` with `text` the way Kubernetes updates a mounted ConfigMap: a new
/// file (`name`), and a symlink renamed over the old one.
pub fn swap_config(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
    let tmp = dir.join("config.toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(dir.join(name), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("config.toml")).unwrap();
}

/// CPU time of the process in milliseconds: the sum of `se.sum_exec_runtime` over its threads
/// (/proc/PID/task/*/sched). Nanosecond-precise, where utime + stime in /proc/PID/stat count
/// 10 ms ticks, too coarse for a daemon that wakes once per 15 s. A thread that exits takes its
/// time with it; the daemon's threads live as long as it does (the bench prints their count).
pub fn cpu_millis(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("sched")).ok())
        .map(|sched| {
            sched
                .lines()
                .find_map(|l| l.strip_prefix("se.sum_exec_runtime"))
                .and_then(|v| v.trim_start_matches([' ', ':']).trim().parse::<f64>().ok())
                .expect("se.sum_exec_runtime in /proc/PID/task/TID/sched")
        })
        .sum()
}

/// A number from /proc/PID/status (`VmRSS:`, `VmHWM:` in KiB; `Threads:`), for the benches.
pub fn status_field(pid: u32, name: &str) -> u64 {
    try_status_field(pid, name).unwrap_or_else(|| panic!("{name} not in /proc/{pid}/status"))
}

/// The same, `None` once the process has exited (a zombie has no memory figures).
pub fn try_status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
