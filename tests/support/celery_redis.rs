//! Real Celery 5 workers on Redis sending events (`-E`), and a publisher of sleeping tasks
//! (tests/support/celery_redis.py); the process wrapper the RabbitMQ tests' workers share. Each test passes its own `global_keyprefix`, so tests running
//! side by side on the shared Redis never see each other's queues or events.

use std::process::{Child, Command, Stdio};

fn helper() -> String {
    format!("{}/tests/support/celery_redis.py", env!("CARGO_MANIFEST_DIR"))
}

fn python(args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command.arg(helper()).args(args);
    command
}

/// Fails, saying how to install Celery, when the helper could not import it.
pub fn assert_installed(stderr: &str) {
    let missing = ["No module named 'celery'", "No module named 'kombu'", "No module named 'redis'"];
    assert!(
        !missing.iter().any(|m| stderr.contains(m)),
        "Celery with Redis support is not installed: `pip install 'celery[redis]'` (scripts/test.sh does)\n{stderr}"
    );
}

/// How a test worker is started.
pub struct WorkerSpec<'a> {
    pub broker: &'a str,
    /// kombu's `global_keyprefix` ("-" for none).
    pub prefix: &'a str,
    pub queue: &'a str,
    /// Celery's node name, e.g. `celery@fake-pod-1`.
    pub hostname: &'a str,
    pub concurrency: u32,
    /// Seconds between heartbeats (`--heartbeat-interval`).
    pub heartbeat: f64,
    /// `-E`: send task events.
    pub events: bool,
}

/// A real Celery worker (threads pool); killed with SIGKILL when dropped (no `worker-offline`).
pub struct CeleryWorker(CeleryProcess);

impl CeleryWorker {
    pub fn start(spec: &WorkerSpec<'_>) -> CeleryWorker {
        let (concurrency, heartbeat) = (spec.concurrency.to_string(), spec.heartbeat.to_string());
        let events = if spec.events { "events" } else { "no-events" };
        let args = ["worker", spec.broker, spec.prefix, spec.queue, spec.hostname, &concurrency, &heartbeat, events];
        CeleryWorker(CeleryProcess::spawn(python(&args)))
    }

    /// Panics with the worker's own words if it has exited.
    pub fn check(&mut self) {
        self.0.check();
    }

    /// SIGKILL: the worker vanishes without a `worker-offline` event, as an evicted pod would.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}

/// A Python process running Celery (tests/support/celery_*.py); killed with SIGKILL when dropped.
pub struct CeleryProcess(Child);

impl CeleryProcess {
    pub fn spawn(mut command: Command) -> CeleryProcess {
        let child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("python3 must be installed");
        CeleryProcess(child)
    }

    /// Panics with the process's own words if it has exited.
    pub fn check(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = self.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            assert_installed(&stderr);
            panic!("the Celery worker exited ({status}): {stderr}");
        }
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for CeleryProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Publishes `count` tasks that each sleep `seconds`, at `per_second` (all at once with `None`);
/// returns when the last is published.
pub fn publish(broker: &str, prefix: &str, queue: &str, seconds: f64, count: u32, per_second: Option<f64>) {
    let (seconds, count) = (seconds.to_string(), count.to_string());
    let pace = per_second.map(|p| p.to_string());
    let mut args = vec!["publish", broker, prefix, queue, &seconds, &count];
    args.extend(pace.as_deref());
    let output = python(&args).output().expect("python3 must be installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_installed(&stderr);
    assert!(output.status.success(), "celery publish failed: {stderr}");
}
