//! Celery queues on a Redis broker, read the way kombu lays them out (kombu
//! `kombu/transport/redis.py`, `Channel._size()` and `QoS`):
//!
//! - a queue is a LIST named after it; priority step N > 0 lives in `<queue><sep><N>`;
//!   depth = Σ LLEN over those keys (kombu's own `Channel._size()`), all queues in one pipeline;
//! - reserved (and, with `acks_late`, running) messages sit in one `unacked` HASH for the whole
//!   DB, each value `[message, exchange, routing_key]`; we attribute them by routing key.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use serde::Deserialize;

use super::CelerySettings;
use crate::policy::Load;
use crate::secret::SecretUrl;
use crate::source::{Reading, SourceError};

impl CelerySettings {
    /// Every list key of every queue, in queue order then step order.
    pub fn list_keys(&self) -> Vec<String> {
        let prefix = &self.global_keyprefix;
        let mut keys = Vec::with_capacity(self.queues.len() * self.priority_steps.len());
        for queue in &self.queues {
            for step in &self.priority_steps {
                keys.push(match step {
                    0 => format!("{prefix}{queue}"),
                    n => format!("{prefix}{queue}{}{n}", self.separator),
                });
            }
        }
        keys
    }
}

/// One `unacked` field (the delivery tag) and its value.
type HashEntry = (Vec<u8>, Vec<u8>);

/// Hash entries fetched per HSCAN round trip.
const HSCAN_COUNT: usize = 1000;

/// One Redis connection per source, opened on first use and re-opened after a failure.
pub struct RedisQueues {
    client: Client,
    url: SecretUrl,
    connection_config: AsyncConnectionConfig,
    connection: Mutex<Option<MultiplexedConnection>>,
    list_keys: Vec<String>,
    unacked_key: Option<String>,
    queues: HashSet<String>,
}

impl RedisQueues {
    pub fn new(url: SecretUrl, settings: CelerySettings, timeout: Duration) -> Result<Self, SourceError> {
        let client = Client::open(url.expose()).map_err(|e| SourceError::Connect(url.scrub(&e.to_string())))?;
        let connection_config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        let unacked_key =
            settings.include_unacked.then(|| format!("{}{}", settings.global_keyprefix, settings.unacked_key));
        Ok(RedisQueues {
            client,
            url,
            connection_config,
            connection: Mutex::new(None),
            list_keys: settings.list_keys(),
            unacked_key,
            queues: settings.queues.into_iter().collect(),
        })
    }

    pub async fn poll(&self) -> Result<Reading, SourceError> {
        let mut connection = self.connection().await?;
        let reading = self.read(&mut connection).await;
        if reading.is_err() {
            // The connection may be broken: drop it so the next poll opens a fresh one.
            *self.lock() = None;
        }
        reading
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // A panic while holding this lock cannot leave the Option half-written: recover it.
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn connection(&self) -> Result<MultiplexedConnection, SourceError> {
        if let Some(connection) = self.lock().clone() {
            return Ok(connection);
        }
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.connection_config)
            .await
            .map_err(|e| SourceError::Connect(self.url.scrub(&e.to_string())))?;
        *self.lock() = Some(connection.clone());
        Ok(connection)
    }

    async fn read(&self, connection: &mut MultiplexedConnection) -> Result<Reading, SourceError> {
        let mut pipe = redis::pipe();
        for key in &self.list_keys {
            pipe.cmd("LLEN").arg(key);
        }
        let lengths: Vec<u64> = pipe.query_async(connection).await.map_err(|e| self.query_error(e))?;
        let waiting = lengths.iter().sum::<u64>() as f64;
        let mut reading = Reading { value: waiting, load: Load { waiting, ..Load::default() }, ..Reading::default() };
        if let Some(key) = &self.unacked_key {
            let (reserved, skipped) = self.count_unacked(connection, key).await?;
            reading.value += reserved as f64;
            // Reserved by a worker: running under acks_late, prefetched otherwise (kombu's QoS).
            reading.load.in_flight = Some(reserved as f64);
            reading.skipped = skipped;
        }
        Ok(reading)
    }

    /// Counts `unacked` entries routed to our queues, by HSCAN (never a blocking HGETALL on a
    /// hash that may be huge). Returns (counted, skipped as unreadable).
    async fn count_unacked(
        &self,
        connection: &mut MultiplexedConnection,
        key: &str,
    ) -> Result<(u64, u64), SourceError> {
        let now = jiff::Timestamp::now();
        let (mut counted, mut skipped) = (0, 0);
        let mut cursor: u64 = 0;
        loop {
            let (next, entries): (u64, Vec<HashEntry>) = redis::cmd("HSCAN")
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(HSCAN_COUNT)
                .query_async(connection)
                .await
                .map_err(|e| self.query_error(e))?;
            for (_, payload) in entries {
                match classify_unacked(&payload, &self.queues, now) {
                    Unacked::Counted => counted += 1,
                    Unacked::Unreadable => skipped += 1,
                    Unacked::OtherQueue | Unacked::NotDue => {}
                }
            }
            if next == 0 {
                return Ok((counted, skipped));
            }
            cursor = next;
        }
    }

    fn query_error(&self, error: redis::RedisError) -> SourceError {
        let message = self.url.scrub(&error.to_string());
        if error.is_timeout() {
            SourceError::Query(format!("timed out: {message}"))
        } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
            SourceError::Connect(message)
        } else if matches!(error.kind(), redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse) {
            SourceError::Protocol(message)
        } else {
            SourceError::Query(message)
        }
    }
}

/// What one `unacked` entry means for our queues.
#[derive(Debug, PartialEq, Eq)]
pub enum Unacked {
    /// Reserved (or running) work of one of our queues.
    Counted,
    /// Routed to a queue we do not watch.
    OtherQueue,
    /// An ETA/countdown task whose time has not come: not demand yet.
    NotDue,
    /// Not the JSON kombu writes.
    Unreadable,
}

/// The parts of kombu's `[message, exchange, routing_key]` entry that we read.
#[derive(Deserialize)]
struct Entry(Message, serde::de::IgnoredAny, String);

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    headers: Option<Headers>,
}

#[derive(Deserialize)]
struct Headers {
    #[serde(default)]
    eta: Option<String>,
}

/// Classifies one `unacked` hash value.
pub fn classify_unacked(payload: &[u8], queues: &HashSet<String>, now: jiff::Timestamp) -> Unacked {
    let Ok(Entry(message, _, routing_key)) = serde_json::from_slice::<Entry>(payload) else {
        return Unacked::Unreadable;
    };
    if !queues.contains(&routing_key) {
        return Unacked::OtherQueue;
    }
    let eta = message.headers.and_then(|h| h.eta).and_then(|eta| eta.parse::<jiff::Timestamp>().ok());
    match eta {
        Some(eta) if eta > now => Unacked::NotDue,
        // No ETA, a past one, or one we cannot read (counted: better one worker too many).
        _ => Unacked::Counted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_keys_follow_kombus_layout() {
        let mut s = CelerySettings::for_queues(&["default"]);
        assert_eq!(s.list_keys(), vec!["default", "default\u{6}\u{16}3", "default\u{6}\u{16}6", "default\u{6}\u{16}9"]);
        s.global_keyprefix = "app:".into();
        s.separator = ":".into();
        s.priority_steps = vec![0, 5];
        assert_eq!(s.list_keys(), vec!["app:default", "app:default:5"]);
    }

    #[test]
    fn classifies_unacked_entries() {
        let queues: HashSet<String> = ["default".to_owned()].into();
        let now: jiff::Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let entry = |eta: &str, rk: &str| {
            format!(r#"[{{"body":"e30=","headers":{{"id":"x","task":"t","eta":{eta}}},"properties":{{}}}},"","{rk}"]"#)
        };
        let cases = [
            (entry("null", "default"), Unacked::Counted),
            (entry("null", "other"), Unacked::OtherQueue),
            (entry(r#""2026-11-28T13:00:00.000000+00:00""#, "default"), Unacked::NotDue),
            (entry(r#""2026-11-28T11:00:00.000000+00:00""#, "default"), Unacked::Counted),
            (entry(r#""not a time""#, "default"), Unacked::Counted),
            (r#"[{"body":"e30="},"","default"]"#.to_owned(), Unacked::Counted),
            ("{not json".to_owned(), Unacked::Unreadable),
            (r#"["only", "two"]"#.to_owned(), Unacked::Unreadable),
        ];
        for (payload, expected) in cases {
            assert_eq!(classify_unacked(payload.as_bytes(), &queues, now), expected, "{payload}");
        }
    }
}
