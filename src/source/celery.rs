//! Celery queues, on either of Celery's main brokers; the URL's scheme picks the reader:
//!
//! - `redis://`, `rediss://`: kombu's Redis layout, one pipelined round trip (`celery/redis.rs`);
//! - `amqp://`, `amqps://`: RabbitMQ, a passive `queue.declare` per queue on one connection
//!   (`celery/amqp.rs`), and unacked messages from the management HTTP API (`celery/management.rs`).
//!
//! With `events = true` (Redis only, for now), the workers' event stream adds which workers are
//! busy and exact task counts (`celery/events.rs`).

mod amqp;
pub mod events;
mod management;
pub mod redis;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use self::events::{EventsStatus, HostnamePattern, SubscriptionState, Subscriptions};
use self::events::{FanoutPrefix, Follower};
pub use self::redis::{Unacked, classify_unacked};
use super::{Reading, SourceError};
use crate::secret::SecretUrl;

/// `kind = "celery"` settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CelerySettings {
    /// Queue names, as workers consume them (`celery -Q …`).
    pub queues: Vec<String>,
    /// kombu's `priority_steps` transport option (Redis only).
    #[serde(default = "default_priority_steps")]
    pub priority_steps: Vec<u32>,
    /// kombu's priority separator, `sep` (Redis only).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// kombu's `global_keyprefix` transport option, prepended to every key (Redis only).
    #[serde(default)]
    pub global_keyprefix: String,
    /// Also count messages reserved by workers: the `unacked` hash on Redis, the management
    /// API's `messages_unacknowledged` on RabbitMQ.
    #[serde(default)]
    pub include_unacked: bool,
    /// kombu's `unacked_key` transport option (Redis only).
    #[serde(default = "default_unacked_key")]
    pub unacked_key: String,
    /// RabbitMQ's management API, `http(s)://user:password@host:15672` (AMQP only).
    #[serde(default, deserialize_with = "secret_url")]
    pub management_url: Option<SecretUrl>,
    /// The environment variable that holds `management_url`, to keep its password out of the file.
    #[serde(default)]
    pub management_url_env: Option<String>,
    /// Follow the workers' event stream: busy workers for busy-aware scale-in, exact task counts
    /// for the wait objective (Redis only).
    #[serde(default)]
    pub events: bool,
    /// How worker names map to pods: one `{pod}`, `*` for any run of characters.
    #[serde(default, deserialize_with = "hostname_pattern")]
    pub hostname_pattern: HostnamePattern,
    /// Celery's `event_exchange` setting.
    #[serde(default = "default_event_exchange")]
    pub event_exchange: String,
    /// kombu's `fanout_prefix` transport option: true, false or a prefix such as "/{db}.".
    #[serde(default)]
    pub fanout_prefix: FanoutPrefix,
    /// kombu's `fanout_patterns` transport option.
    #[serde(default = "default_true")]
    pub fanout_patterns: bool,
}

fn default_priority_steps() -> Vec<u32> {
    vec![0, 3, 6, 9]
}

fn default_separator() -> String {
    "\u{6}\u{16}".to_owned()
}

fn default_unacked_key() -> String {
    "unacked".to_owned()
}

fn default_event_exchange() -> String {
    "celeryev".to_owned()
}

fn default_true() -> bool {
    true
}

fn hostname_pattern<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HostnamePattern, D::Error> {
    HostnamePattern::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

fn secret_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretUrl>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(SecretUrl::new))
}

/// The keys that shape kombu's Redis layout and mean nothing on RabbitMQ.
const REDIS_ONLY: [&str; 4] = ["priority_steps", "separator", "global_keyprefix", "unacked_key"];

/// The keys that shape the event subscription: meaningless without `events = true`.
const EVENTS_ONLY: [&str; 4] = ["hostname_pattern", "event_exchange", "fanout_prefix", "fanout_patterns"];

/// Which broker a Celery URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    Redis,
    Amqp,
}

impl Broker {
    /// By the URL's scheme, as kombu picks its transport; `None` for a scheme it is neither.
    pub fn of(url: &SecretUrl) -> Option<Broker> {
        let scheme = url.expose().split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase())?;
        match scheme.as_str() {
            "redis" | "rediss" | "redis+unix" | "unix" => Some(Broker::Redis),
            "amqp" | "amqps" => Some(Broker::Amqp),
            _ => None,
        }
    }
}

impl CelerySettings {
    /// Settings for these queues with kombu's defaults for everything else.
    pub fn for_queues(queues: &[&str]) -> Self {
        CelerySettings {
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            priority_steps: default_priority_steps(),
            separator: default_separator(),
            global_keyprefix: String::new(),
            include_unacked: false,
            unacked_key: default_unacked_key(),
            management_url: None,
            management_url_env: None,
            events: false,
            hostname_pattern: HostnamePattern::default(),
            event_exchange: default_event_exchange(),
            fanout_prefix: FanoutPrefix::default(),
            fanout_patterns: true,
        }
    }

    /// Problems with the values for the broker `url` names (a missing URL is reported by the
    /// caller), as `(key, message)`. `written` are the keys the file sets.
    pub fn problems(&self, url: Option<&SecretUrl>, written: &[String]) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let broker = url.and_then(Broker::of);
        if let Some(url) = url {
            match broker {
                None => problems.push(("url", format!("{url} is not a redis://, rediss://, amqp:// or amqps:// URL"))),
                Some(Broker::Amqp) => {
                    if let Err(e) = amqp::parse_uri(url) {
                        problems.push(("url", e.to_string()));
                    }
                }
                Some(Broker::Redis) => {}
            }
        }
        if self.queues.is_empty() {
            problems.push(("queues", "must name at least one queue".to_owned()));
        }
        if self.queues.iter().any(String::is_empty) {
            problems.push(("queues", "queue names must not be empty".to_owned()));
        }
        match broker {
            Some(Broker::Redis) => problems.extend(self.redis_problems()),
            Some(Broker::Amqp) => problems.extend(self.amqp_problems(written)),
            None => {}
        }
        problems.extend(self.events_problems(broker, written));
        problems
    }

    fn events_problems(&self, broker: Option<Broker>, written: &[String]) -> Vec<(&'static str, String)> {
        if !self.events {
            return EVENTS_ONLY
                .into_iter()
                .filter(|key| written.iter().any(|w| w == key))
                .map(|key| (key, "applies to the event stream only: set `events = true`".to_owned()))
                .collect();
        }
        let mut problems = Vec::new();
        if broker == Some(Broker::Amqp) {
            problems.push((
                "events",
                "following Celery events over RabbitMQ is not supported yet: only on a Redis broker \
                 (remove `events`; busy-aware scale-in then needs an Airflow source)"
                    .to_owned(),
            ));
        }
        if self.event_exchange.is_empty() {
            problems.push(("event_exchange", "must not be empty (Celery's default is \"celeryev\")".to_owned()));
        }
        problems
    }

    fn redis_problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.priority_steps.is_empty() {
            problems
                .push(("priority_steps", "must have at least one step (kombu's default is [0, 3, 6, 9])".to_owned()));
        }
        if self.separator.is_empty() {
            problems.push(("separator", "must not be empty (kombu's default is \"\\u0006\\u0016\")".to_owned()));
        }
        if self.management_url.is_some() || self.management_url_env.is_some() {
            let key = if self.management_url_env.is_some() { "management_url_env" } else { "management_url" };
            problems.push((key, "is RabbitMQ's management API: it applies to amqp:// brokers only".to_owned()));
        }
        problems
    }

    fn amqp_problems(&self, written: &[String]) -> Vec<(&'static str, String)> {
        let mut problems: Vec<(&'static str, String)> = REDIS_ONLY
            .into_iter()
            .filter(|key| written.iter().any(|w| w == key))
            .map(|key| {
                (key, "applies to Redis brokers only: on RabbitMQ a priority queue (x-max-priority) is one queue, counted once".to_owned())
            })
            .collect();
        if self.queues.iter().any(|q| q.len() > 255) {
            problems.push(("queues", "an AMQP queue name is at most 255 bytes".to_owned()));
        }
        if self.include_unacked && self.management_url.is_none() && self.management_url_env.is_none() {
            problems.push((
                "include_unacked",
                "on RabbitMQ, unacked messages are read from the management API: set management_url or \
                 management_url_env (AMQP's queue.declare counts ready messages only)"
                    .to_owned(),
            ));
        }
        if let Some(url) = &self.management_url
            && let Err(message) = management::Endpoint::parse(url, "/")
        {
            problems.push(("management_url", message));
        }
        problems
    }

    /// Takes `management_url` from the variable `management_url_env` names, out of `env`;
    /// returns a problem when both are given or the variable is not set.
    pub fn resolve_env(&mut self, env: &HashMap<String, String>) -> Option<(&'static str, String)> {
        let variable = self.management_url_env.as_ref()?;
        if self.management_url.is_some() {
            return Some((
                "management_url_env",
                "give either `management_url` or `management_url_env`, not both".into(),
            ));
        }
        match env.get(variable) {
            Some(url) if !url.is_empty() => {
                self.management_url = Some(SecretUrl::new(url.clone()));
                None
            }
            _ => Some(("management_url_env", format!("environment variable {variable} is not set"))),
        }
    }
}

/// A Celery source on whichever broker its URL names, following its event stream if asked.
pub struct CelerySource {
    queues: Queues,
    events: Option<Follower>,
}

enum Queues {
    Redis(redis::RedisQueues),
    Amqp(amqp::AmqpQueues),
}

impl CelerySource {
    /// A source whose event subscription (with `events`) is shared through `subscriptions`.
    pub fn new(
        url: SecretUrl,
        settings: CelerySettings,
        timeout: Duration,
        subscriptions: &mut Subscriptions,
    ) -> Result<Self, SourceError> {
        let events = match (settings.events, Broker::of(&url)) {
            (true, Some(Broker::Redis)) => Some(subscriptions.follower(&url, &settings, timeout)?),
            (true, _) => return Err(SourceError::Connect("Celery events are followed on Redis brokers only".into())),
            (false, _) => None,
        };
        let queues = match Broker::of(&url) {
            Some(Broker::Redis) => Queues::Redis(redis::RedisQueues::new(url, settings, timeout)?),
            Some(Broker::Amqp) => Queues::Amqp(amqp::AmqpQueues::new(url, settings)?),
            None => {
                return Err(SourceError::Connect(format!(
                    "{url} is not a Celery broker URL (redis://, rediss://, amqp:// or amqps://)"
                )));
            }
        };
        Ok(CelerySource { queues, events })
    }

    pub async fn poll(&self) -> Result<Reading, SourceError> {
        if let Some(events) = &self.events {
            events.prepare().await;
        }
        let mut reading = match &self.queues {
            Queues::Redis(queues) => queues.poll().await?,
            Queues::Amqp(queues) => queues.poll().await?,
        };
        if let Some(events) = &self.events {
            events.overlay(&mut reading);
        }
        Ok(reading)
    }

    /// Running tasks per pod, from the event stream; `None` without `events`.
    pub async fn busy_hosts(&self) -> Option<Result<BTreeMap<String, u32>, SourceError>> {
        Some(self.events.as_ref()?.busy_hosts().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(url: &str, settings: &CelerySettings, written: &[&str]) -> Vec<(&'static str, String)> {
        let written: Vec<String> = written.iter().map(|k| (*k).to_owned()).collect();
        settings.problems(Some(&SecretUrl::new(url)), &written)
    }

    #[test]
    fn the_scheme_picks_the_broker() {
        let cases = [
            ("redis://r:6379/0", Some(Broker::Redis)),
            ("rediss://:pw@r:6380/1", Some(Broker::Redis)),
            ("redis+unix:///run/redis.sock", Some(Broker::Redis)),
            ("amqp://guest:guest@rabbit:5672/%2f", Some(Broker::Amqp)),
            ("AMQPS://rabbit/celery", Some(Broker::Amqp)),
            ("sqs://", None),
            ("rabbit:5672", None),
        ];
        for (url, broker) in cases {
            assert_eq!(Broker::of(&SecretUrl::new(url)), broker, "{url}");
        }
        let settings = CelerySettings::for_queues(&["celery"]);
        assert_eq!(problems("sqs://u:hunter2@aws", &settings, &[])[0].0, "url");
        assert!(!problems("sqs://u:hunter2@aws", &settings, &[])[0].1.contains("hunter2"));
        assert_eq!(problems("amqp://u:p@rabbit:port/", &settings, &[])[0].0, "url");
    }

    #[test]
    fn redis_layout_keys_are_refused_on_amqp_by_name() {
        let mut settings = CelerySettings::for_queues(&["celery"]);
        settings.separator = ":".into();
        let found = problems("amqp://rabbit", &settings, &["queues", "separator", "priority_steps"]);
        let keys: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec!["priority_steps", "separator"]);
        assert!(found[0].1.contains("x-max-priority"), "{found:?}");
        assert_eq!(problems("redis://r/0", &settings, &["separator", "priority_steps"]), vec![]);
    }

    #[test]
    fn unacked_on_amqp_needs_the_management_api() {
        let mut settings = CelerySettings::for_queues(&["celery"]);
        settings.include_unacked = true;
        let found = problems("amqp://rabbit", &settings, &["include_unacked"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "include_unacked");
        assert!(found[0].1.contains("management_url"), "{found:?}");
        settings.management_url = Some(SecretUrl::new("http://guest:guest@rabbit:15672"));
        assert_eq!(problems("amqp://rabbit", &settings, &[]), vec![]);
        assert_eq!(problems("redis://r/0", &settings, &[])[0].0, "management_url");
        settings.management_url = Some(SecretUrl::new("ftp://rabbit"));
        assert_eq!(problems("amqp://rabbit", &settings, &[])[0].0, "management_url");
    }

    #[test]
    fn amqp_queue_names_fit_a_short_string() {
        let long = "q".repeat(256);
        let settings = CelerySettings::for_queues(&[&long]);
        assert_eq!(problems("amqp://rabbit", &settings, &[])[0].0, "queues");
        assert_eq!(problems("redis://r/0", &settings, &[]), vec![]);
    }

    #[test]
    fn the_management_url_may_come_from_the_environment() {
        let mut settings = CelerySettings::for_queues(&["celery"]);
        settings.management_url_env = Some("RABBIT_API".into());
        let env: HashMap<String, String> = [("RABBIT_API".to_owned(), "http://u:p@rabbit:15672".to_owned())].into();
        assert_eq!(settings.clone().resolve_env(&HashMap::new()).map(|p| p.0), Some("management_url_env"));
        assert_eq!(settings.resolve_env(&env), None);
        assert_eq!(settings.management_url, Some(SecretUrl::new("http://u:p@rabbit:15672")));
        assert_eq!(settings.resolve_env(&env).map(|p| p.0), Some("management_url_env"), "both given now");
    }
}
