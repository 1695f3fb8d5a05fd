//! The machine's real Redis, and messages in kombu's real format.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::json;

/// `TEST_REDIS_URL`, else the local default.
pub fn url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A connection to the test Redis; fails the test (never skips) if Redis is not reachable.
pub async fn connect() -> MultiplexedConnection {
    let url = url();
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("bad TEST_REDIS_URL {url}: {e}"));
    match client.get_multiplexed_async_connection().await {
        Ok(connection) => connection,
        Err(e) => panic!(
            "Redis is not reachable at {url} ({e}). These tests need a real Redis: start one with \
             `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`, \
             or point TEST_REDIS_URL at one."
        ),
    }
}

/// A task message as kombu's Redis transport stores it in a queue list
/// (kombu `kombu/transport/virtual/base.py`, `Channel.prepare_message`).
pub fn kombu_message(task_id: &str, routing_key: &str, priority: u8, eta: Option<&str>) -> String {
    json!({
        "body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": "proj.tasks.add", "id": task_id, "eta": eta, "expires": null,
            "retries": 0, "timelimit": [null, null], "root_id": task_id, "parent_id": null,
            "group": null, "argsrepr": "()", "kwargsrepr": "{}", "origin": "gen1@test", "ignore_result": false,
        },
        "properties": {
            "correlation_id": task_id, "reply_to": "8f2c-reply", "delivery_mode": 2,
            "delivery_info": { "exchange": "", "routing_key": routing_key },
            "priority": priority, "body_encoding": "base64", "delivery_tag": format!("tag-{task_id}"),
        },
    })
    .to_string()
}

/// An `unacked` hash value: `[message, exchange, routing_key]`.
pub fn unacked_entry(task_id: &str, routing_key: &str, eta: Option<&str>) -> String {
    format!(r#"[{}, "", "{routing_key}"]"#, kombu_message(task_id, routing_key, 0, eta))
}

/// LPUSHes `n` messages onto `key`, as a producer would, in one transaction (so a concurrent
/// poll sees all of them or none).
pub async fn push(connection: &mut MultiplexedConnection, key: &str, routing_key: &str, n: usize) {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..n {
        pipe.cmd("LPUSH").arg(key).arg(kombu_message(&format!("{key}-{i}"), routing_key, 0, None)).ignore();
    }
    let () = pipe.query_async(connection).await.expect("LPUSH");
}

/// Deletes every key with this prefix (the test's own namespace).
pub async fn clean(connection: &mut MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(connection).await.expect("KEYS");
    if !keys.is_empty() {
        let () = redis::cmd("DEL").arg(keys).query_async(connection).await.expect("DEL");
    }
}

/// A private redis-server on a free port, for faults the shared one must not suffer.
pub struct PrivateRedis {
    pub port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    pub fn start(port: u16, extra: &[&str]) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this test (Debian package redis-server)");
        let server = PrivateRedis { port, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private redis-server on port {port} did not start");
    }
}

impl PrivateRedis {
    /// A Redis that hangs (SIGSTOP): the kernel still accepts connections, nothing is answered.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Answers again (SIGCONT), the requests that waited included.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill");
        assert!(status.success(), "kill -{name} {pid}");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
