//! Celery queues on RabbitMQ: the ready messages of each queue from a passive `queue.declare`
//! (its `message_count`, AMQP 0-9-1 §1.7.2.1), every queue on one connection and one channel,
//! the declares pipelined. RabbitMQ priority queues (`x-max-priority`, Celery's
//! `task_queue_max_priority`) keep every priority in the one queue, so one queue is one count.
//!
//! A queue that does not exist yet (kombu declares queues when a worker or producer first uses
//! them) counts 0 and is logged once, not an error. The broker answers a passive declare of a
//! missing queue with 404 NOT_FOUND and closes the channel; the declares behind it on that
//! channel fail, so a new channel takes them up from there.

use std::collections::BTreeSet;
use std::sync::Mutex;

use futures_util::future::join_all;
use lapin::options::QueueDeclareOptions;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ErrorKind};

use super::CelerySettings;
use super::management::Management;
use crate::policy::Load;
use crate::secret::SecretUrl;
use crate::source::{Reading, SourceError};

/// Declares in flight at once on one channel: after a missing queue, at most this many are sent
/// again on the next channel.
const WINDOW: usize = 128;

/// What the broker shows of this client (the management UI's connection name).
const CONNECTION_NAME: &str = "queue-autoscaler";

/// A connection and the channel the declares go on.
struct Session {
    connection: Connection,
    channel: Channel,
}

/// One AMQP connection per source, made at the first poll. It goes back into its slot only
/// after a poll that went through, so a failed or timed-out poll leaves the next one a fresh
/// connection.
pub struct AmqpQueues {
    url: SecretUrl,
    uri: AMQPUri,
    queues: Vec<String>,
    session: Mutex<Option<Session>>,
    /// Queues found missing at the last poll, so that each change is logged once.
    missing: Mutex<BTreeSet<String>>,
    // Boxed: an HTTP client is large, and most sources have none.
    management: Option<Box<Management>>,
}

impl AmqpQueues {
    pub fn new(url: SecretUrl, settings: CelerySettings) -> Result<Self, SourceError> {
        let uri = parse_uri(&url)?;
        let management = match (&settings.management_url, settings.include_unacked) {
            (Some(management_url), true) => {
                Some(Box::new(Management::new(management_url, &uri.vhost, &settings.queues)?))
            }
            _ => None,
        };
        Ok(AmqpQueues {
            url,
            uri,
            queues: settings.queues,
            session: Mutex::new(None),
            missing: Mutex::new(BTreeSet::new()),
            management,
        })
    }

    /// Ready messages, plus unacked ones when the management API is configured. Both or
    /// neither: a partial count could scale down what is still busy.
    pub async fn poll(&self) -> Result<Reading, SourceError> {
        let ready = self.ready();
        let (ready, unacked) = match &self.management {
            Some(management) => {
                let (ready, unacked) = tokio::join!(ready, management.unacked());
                (ready?, unacked?)
            }
            None => (ready.await?, 0),
        };
        // Unacked: delivered to a worker and not acknowledged, running under acks_late.
        let in_flight = self.management.as_ref().map(|_| unacked as f64);
        let load = Load { waiting: ready as f64, in_flight, ..Load::default() };
        Ok(Reading { value: ready.saturating_add(unacked) as f64, load, ..Reading::default() })
    }

    /// Σ ready messages over the queues, on the source's connection.
    async fn ready(&self) -> Result<u64, SourceError> {
        let taken = lock(&self.session).take();
        let mut session = match taken {
            Some(session) if session.connection.status().connected() => session,
            _ => self.connect().await?,
        };
        if !session.channel.status().connected() {
            // The broker may close a channel on its own (an operator, a policy): take another.
            session.channel =
                session.connection.create_channel().await.map_err(|e| self.error("reopen a channel", &e))?;
        }
        let (ready, missing) = self.count(&mut session).await?;
        self.note_missing(missing);
        *lock(&self.session) = Some(session);
        Ok(ready)
    }

    async fn connect(&self) -> Result<Session, SourceError> {
        let properties = ConnectionProperties::default().with_connection_name(CONNECTION_NAME.into());
        // Whatever fails here (the socket, TLS, the login: ACCESS_REFUSED) is a failure to connect.
        let connect_error = |e: lapin::Error| SourceError::Connect(self.url.scrub(&format!("{}: {e}", self.url)));
        let connection = Connection::connect_uri(self.uri.clone(), properties).await.map_err(connect_error)?;
        let channel = connection.create_channel().await.map_err(connect_error)?;
        Ok(Session { connection, channel })
    }

    /// Passive declares, a window at a time; returns the ready total and the missing queues.
    async fn count(&self, session: &mut Session) -> Result<(u64, BTreeSet<String>), SourceError> {
        let (mut ready, mut missing) = (0u64, BTreeSet::new());
        let mut pending = self.queues.as_slice();
        while !pending.is_empty() {
            let window = &pending[..pending.len().min(WINDOW)];
            let declares = window.iter().map(|queue| {
                let options = QueueDeclareOptions::default().passive();
                session.channel.queue_declare(queue.as_str().into(), options, FieldTable::default())
            });
            let mut done = 0;
            for result in join_all(declares).await {
                match result {
                    Ok(queue) => ready = ready.saturating_add(u64::from(queue.message_count())),
                    Err(e) if is_not_found(&e) => {
                        // The channel is closed now and the rest of the window failed with it.
                        missing.insert(window[done].clone());
                        done += 1;
                        session.channel = session
                            .connection
                            .create_channel()
                            .await
                            .map_err(|e| self.error("reopen a channel", &e))?;
                        break;
                    }
                    Err(e) => return Err(self.error("queue.declare", &e)),
                }
                done += 1;
            }
            pending = &pending[done..];
        }
        Ok((ready, missing))
    }

    /// Logs each queue that went missing, and each that came back, once.
    fn note_missing(&self, now: BTreeSet<String>) {
        let mut before = lock(&self.missing);
        for queue in now.difference(&before) {
            tracing::info!(
                broker = %self.url, queue = %queue,
                "queue does not exist (yet): counted as 0; kombu declares a queue when a worker or producer first uses it"
            );
        }
        for queue in before.difference(&now) {
            tracing::info!(broker = %self.url, queue = %queue, "queue exists now");
        }
        *before = now;
    }

    /// A failure as a bounded error kind, its text free of the URL's password.
    fn error(&self, doing: &str, error: &lapin::Error) -> SourceError {
        let message = self.url.scrub(&format!("{doing}: {error}"));
        match error.kind() {
            ErrorKind::IOError(_) | ErrorKind::RuntimeShutdownError(_) | ErrorKind::MissingHeartbeatError => {
                SourceError::Connect(message)
            }
            ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Hard(_)) => SourceError::Connect(message),
            ErrorKind::InvalidConnectionState(_) | ErrorKind::AuthProviderError(_) => SourceError::Connect(message),
            ErrorKind::ParsingError(_) | ErrorKind::InvalidProtocolVersion(_) => SourceError::Protocol(message),
            _ => SourceError::Query(message),
        }
    }
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if e.kind() == &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave their value half-written: recover it.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The URL as lapin reads it (the path is the vhost, percent-decoded; `amqp://host` is `/`).
pub fn parse_uri(url: &SecretUrl) -> Result<AMQPUri, SourceError> {
    url.expose().parse().map_err(|e: String| SourceError::Connect(url.scrub(&format!("invalid AMQP URL {url}: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_host_and_vhost() {
        let cases = [
            ("amqp://guest:guest@127.0.0.1:5672/%2f", "127.0.0.1", 5672, "/"),
            ("amqp://rabbit", "rabbit", 5672, "/"),
            ("amqps://u:p@10.1.2.3/celery", "10.1.2.3", 5671, "celery"),
            ("amqp://u:p@rabbit.example.com:5673/a%2Fb", "rabbit.example.com", 5673, "a/b"),
        ];
        for (url, host, port, vhost) in cases {
            let uri = parse_uri(&SecretUrl::new(url)).expect(url);
            assert_eq!(
                (uri.authority.host.as_str(), uri.authority.port, uri.vhost.as_str()),
                (host, port, vhost),
                "{url}"
            );
        }
    }

    #[test]
    fn a_bad_url_is_an_error_without_the_password() {
        let error = parse_uri(&SecretUrl::new("amqp://u:hunter2@rabbit:notaport/")).expect_err("bad port");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
