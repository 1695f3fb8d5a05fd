//! The machine's real RabbitMQ (AMQP and its management API), real Celery publishing to it and
//! consuming from it (tests/support/celery_amqp.py), and a TCP proxy that can cut connections.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::celery_redis::{CeleryProcess, assert_installed};

/// `TEST_AMQP_URL`, else the machine's RabbitMQ on the default vhost.
pub fn url() -> String {
    std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// `TEST_RABBITMQ_MANAGEMENT_URL`, else the machine's management plugin.
pub fn management_url() -> String {
    std::env::var("TEST_RABBITMQ_MANAGEMENT_URL").unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".to_owned())
}

fn address(url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("bad test URL {url}: {e}"));
    let port = parsed.port_or_known_default().unwrap_or(5672);
    format!("{}:{port}", parsed.host_str().unwrap_or("127.0.0.1"))
}

/// Fails the test (never skips) when RabbitMQ or its management API does not answer.
pub fn require() {
    let amqp = address(&url());
    if std::net::TcpStream::connect(&amqp).is_err() {
        panic!(
            "RabbitMQ is not reachable at {amqp}. Start it with `rabbitmq-server -detached` (Debian package \
             rabbitmq-server), or point TEST_AMQP_URL at one."
        );
    }
    let api = address(&management_url());
    if std::net::TcpStream::connect(&api).is_err() {
        panic!(
            "RabbitMQ's management API is not reachable at {api}. Enable it with \
             `rabbitmq-plugins enable rabbitmq_management` (scripts/test.sh does), or set TEST_RABBITMQ_MANAGEMENT_URL."
        );
    }
}

/// A connection and channel of the test's own, as a producer would have.
pub async fn channel() -> (Connection, Channel) {
    require();
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.expect("AMQP connection");
    let channel = connection.create_channel().await.expect("AMQP channel");
    (connection, channel)
}

/// Declares each queue and publishes `n` small messages to it (through the default exchange).
pub async fn fill(channel: &Channel, queues: &[(String, usize)]) {
    for (queue, n) in queues {
        channel
            .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .expect("declare");
        for _ in 0..*n {
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    b"{}",
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
        }
    }
    // A declare after the publishes returns once the broker has routed them (one channel, in order).
    if let Some((queue, _)) = queues.last() {
        let options = QueueDeclareOptions::default().passive();
        channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.expect("declare");
    }
}

/// Deletes its queues when dropped, so that a failing test leaves none behind.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for queue in &self.0 {
            // A queue that was never made answers 404: nothing to delete.
            let path = format!("/api/queues/%2F/{}", percent_encoding::utf8_percent_encode(queue, NAME));
            management_request("DELETE", &path);
        }
    }
}

/// What a queue name must escape in a URL path segment.
const NAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A GET on the management API: (status, body).
pub fn management_get(path: &str) -> (u16, String) {
    management_request("GET", path)
}

fn management_request(method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let base = url::Url::parse(&management_url()).expect("management URL");
    let credentials = format!("{}:{}", base.username(), base.password().unwrap_or(""));
    let authorization = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut stream = std::net::TcpStream::connect(address(base.as_str())).expect("management API");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // HTTP/1.0: the answer comes whole and the connection closes after it.
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {authorization}\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The broker's statistics for one queue on the default vhost: (ready, unacked), once it has them.
pub fn queue_stats(queue: &str) -> Option<(u64, u64)> {
    let (status, body) = management_get(&format!("/api/queues/%2F/{queue}"));
    let stats: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    Some((stats["messages_ready"].as_u64()?, stats["messages_unacknowledged"].as_u64()?))
}

fn helper() -> String {
    format!("{}/tests/support/celery_amqp.py", env!("CARGO_MANIFEST_DIR"))
}

fn python(args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command.arg(helper()).args(args);
    command
}

/// Publishes one Celery task per priority to `queue` (a priority queue, declared as Celery does).
pub fn celery_publish(queue: &str, priorities: &[u8]) {
    let priorities: Vec<String> = priorities.iter().map(u8::to_string).collect();
    let broker = url();
    let mut args = vec!["publish", broker.as_str(), queue];
    args.extend(priorities.iter().map(String::as_str));
    let output = python(&args).output().expect("python3 must be installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_installed(&stderr);
    assert!(output.status.success(), "celery publish failed: {stderr}");
}

/// A real Celery worker consuming `queue` with `acks_late` and a prefetch of `prefetch`, each task
/// sleeping for minutes: it holds `prefetch` messages unacked until it is killed (on drop).
pub struct CeleryWorker(CeleryProcess);

impl CeleryWorker {
    pub fn start(queue: &str, prefetch: u32) -> CeleryWorker {
        let prefetch = prefetch.to_string();
        CeleryWorker(CeleryProcess::spawn(python(&["worker", &url(), queue, &prefetch])))
    }

    /// Panics with the worker's own words if it has exited.
    pub fn check(&mut self) {
        self.0.check();
    }
}

/// A TCP proxy in front of RabbitMQ whose connections the test can cut.
pub struct Proxy {
    pub address: SocketAddr,
    cut: Arc<Notify>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let cut = Arc::new(Notify::new());
        let cut_all = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (upstream, cut) = (upstream.clone(), cut_all.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Proxy { address, cut }
    }

    /// Closes every connection through the proxy; new ones are still accepted.
    pub fn cut(&self) {
        self.cut.notify_waiters();
    }
}

/// The broker's `host:port`, for a proxy's upstream.
pub fn broker_address() -> String {
    address(&url())
}

/// `url()` through `proxy`.
pub fn url_through(proxy: &Proxy) -> String {
    let mut parsed = url::Url::parse(&url()).expect("AMQP URL");
    parsed.set_port(Some(proxy.address.port())).expect("port");
    parsed.to_string()
}
