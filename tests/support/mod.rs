//! Shared test helpers: the test API server, the real Redis, the real binary.
#![allow(dead_code)] // each test file uses a different subset

pub mod airflow;
pub mod apiserver;
pub mod celery_redis;
pub mod daemon;
pub mod kafka;
pub mod manifests;
pub mod rabbitmq;
pub mod redis;
pub mod scenario;
pub mod tls;
pub mod toml;

use std::time::Duration;

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A name no other test (or earlier run) uses: for queues, key prefixes, targets.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}
