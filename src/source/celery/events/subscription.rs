//! One subscription to a broker's event stream, shared by the sources on it: a task in the
//! background that keeps a Redis pub/sub connection subscribed, reconnecting with a bounded
//! backoff, and feeds what arrives into the shared [`State`].
//!
//! The channel is the one kombu publishes the `celeryev` fanout exchange to (`kombu/transport/
//! redis.py`, `Channel._get_publish_topic`): `<global_keyprefix><fanout prefix><exchange>/<routing
//! key>`, the fanout prefix being `/{db}.` by default (`keyprefix_fanout`, formatted with the db
//! in `_get_pool`), and `/<routing key>` present only with `fanout_patterns` (kombu's default
//! since 4.0). Celery's own receiver binds with routing key `#`, which kombu turns into the
//! pattern `*` and `PSUBSCRIBE`s (`_queue_bind`, `_subscribe`); we do the same.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::watch;

use super::state::State;
use super::wire;
use crate::secret::SecretUrl;
use crate::source::SourceError;

/// The first wait before reconnecting, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long starts the backoff over.
const STABLE: Duration = Duration::from_secs(60);
/// How often an idle subscription pings Redis, to find a dead connection (no TCP keepalive
/// would, for minutes).
const PING_EVERY: Duration = Duration::from_secs(10);

/// Where to subscribe: the broker and the channel pattern.
#[derive(Clone)]
pub struct Link {
    client: redis::Client,
    url: SecretUrl,
    pattern: String,
    timeout: Duration,
}

impl Link {
    pub fn new(url: &SecretUrl, pattern: String, timeout: Duration) -> Result<Link, SourceError> {
        let client = redis::Client::open(url.expose()).map_err(|e| SourceError::Connect(url.scrub(&e.to_string())))?;
        Ok(Link { client, url: url.clone(), pattern, timeout })
    }

    /// The db the URL selects (kombu's `virtual_host`), for the fanout prefix.
    pub fn db(url: &SecretUrl) -> Result<i64, SourceError> {
        let client = redis::Client::open(url.expose()).map_err(|e| SourceError::Connect(url.scrub(&e.to_string())))?;
        Ok(client.get_connection_info().redis_settings().db())
    }

    async fn open(&self) -> Result<(PubSubSink, PubSubStream), String> {
        let subscribe = async {
            let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
            sink.psubscribe(&self.pattern).await?;
            Ok::<_, redis::RedisError>((sink, stream))
        };
        match tokio::time::timeout(self.timeout, subscribe).await {
            Ok(Ok(opened)) => Ok(opened),
            Ok(Err(e)) => Err(self.url.scrub(&e.to_string())),
            Err(_) => Err(format!("timed out after {:?}", self.timeout)),
        }
    }
}

/// A running subscription. The task stops when the last source holding it is dropped.
pub struct Subscription {
    link: Link,
    state: Arc<Mutex<State>>,
    /// Connection attempts made so far: a first poll waits for the first one.
    attempts: watch::Receiver<u64>,
    attempts_sender: Arc<watch::Sender<u64>>,
    task: OnceLock<AbortOnDrop>,
}

/// The follow task, aborted when its subscription is dropped: it holds nothing that needs a
/// clean shutdown (a pub/sub connection just closes).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Subscription {
    pub fn new(link: Link) -> Subscription {
        let (sender, attempts) = watch::channel(0);
        Subscription {
            link,
            state: Arc::new(Mutex::new(State::new())),
            attempts,
            attempts_sender: Arc::new(sender),
            task: OnceLock::new(),
        }
    }

    /// The shared state; held only for short, synchronous work (never across an await).
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Starts following on first use (from a poll, so inside the runtime), then waits, at most
    /// `wait`, for the first connection attempt to end.
    pub async fn start(&self, wait: Duration) {
        self.task.get_or_init(|| {
            let (link, state, attempts) = (self.link.clone(), self.state.clone(), self.attempts_sender.clone());
            AbortOnDrop(tokio::spawn(follow(link, state, attempts)))
        });
        let mut attempts = self.attempts.clone();
        let _ = tokio::time::timeout(wait, attempts.wait_for(|n| *n > 0)).await;
    }
}

/// A poisoned lock still holds a consistent state (every update is a few field writes): recover it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Subscribes, reads until the connection fails, and again, forever (until aborted).
async fn follow(link: Link, state: Arc<Mutex<State>>, attempts: Arc<watch::Sender<u64>>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match link.open().await {
            Ok((sink, stream)) => {
                let since = Instant::now();
                lock(&state).subscribed(since);
                attempts.send_modify(|n| *n += 1);
                tracing::info!(broker = %link.url, channel = %link.pattern, "following Celery events");
                let error = read(sink, stream, &state, link.timeout).await;
                lock(&state).lost();
                tracing::warn!(
                    broker = %link.url, %error,
                    "Celery event subscription lost: busy workers unknown until it is back and every worker heard"
                );
                if since.elapsed() >= STABLE {
                    backoff = BACKOFF_MIN;
                }
            }
            Err(error) => {
                attempts.send_modify(|n| *n += 1);
                tracing::warn!(broker = %link.url, %error, retry_in = ?backoff, "cannot subscribe to Celery events");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Feeds messages into the state until the connection ends or stops answering pings; returns why.
async fn read(mut sink: PubSubSink, mut stream: PubSubStream, state: &Mutex<State>, timeout: Duration) -> String {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut body = Vec::new();
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return "the connection closed".to_owned() };
                receive(message.get_payload_bytes(), &mut body, state);
            }
            _ = ping.tick() => match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return e.to_string(),
                Err(_) => return format!("no answer to a ping within {timeout:?}"),
            },
        }
    }
}

/// Decodes one message outside the lock, then applies its events under it.
pub fn receive(payload: &[u8], body: &mut Vec<u8>, state: &Mutex<State>) {
    let now = Instant::now();
    match wire::decode(payload, body) {
        Ok(events) => {
            let mut state = lock(state);
            for event in &events {
                state.apply(event, now);
            }
        }
        Err(why) => {
            tracing::debug!(%why, "unreadable Celery event message left out");
            lock(state).unreadable();
        }
    }
}
