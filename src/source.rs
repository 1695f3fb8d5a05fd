//! Queue sources: each kind is one small file with its settings and one `poll()`.
//!
//! A source is polled at most once per cycle, whatever the number of targets that use it; a
//! failed poll is an observation (an error with a bounded label), never a dead loop.

pub mod airflow;
pub mod celery;
pub mod kafka;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::policy::{Load, Observation, Sample};
use crate::secret::SecretUrl;

/// A validated `[sources.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    /// The connection URL (`url`, or the variable named by `url_env`), where the kind has one.
    pub url: Option<SecretUrl>,
    /// Bound on one poll, connection included.
    pub timeout: Duration,
    pub settings: Settings,
}

impl SourceSpec {
    /// Whether this source follows a Celery event stream (`events = true`): its readings carry
    /// an [`celery::EventsStatus`] and it can say which workers are busy.
    pub fn follows_celery_events(&self) -> bool {
        matches!(&self.settings, Settings::Celery(settings) if settings.events)
    }
}

/// The kind-specific part of a source's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Settings {
    Celery(celery::CelerySettings),
    Airflow(airflow::AirflowSettings),
    Kafka(kafka::KafkaSettings),
}

/// The kinds of source, as named in `kind = "…"` and in metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Celery,
    Airflow,
    Kafka,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Celery, Kind::Airflow, Kind::Kafka];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Celery => "celery",
            Kind::Airflow => "airflow",
            Kind::Kafka => "kafka",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl Settings {
    pub fn kind(&self) -> Kind {
        match self {
            Settings::Celery(_) => Kind::Celery,
            Settings::Airflow(_) => Kind::Airflow,
            Settings::Kafka(_) => Kind::Kafka,
        }
    }
}

/// Connections shared by the sources on one server: one pool per database URL (KEDA opens one
/// per trigger, kedacore/keda#6955).
#[derive(Default)]
pub struct Shared {
    databases: HashMap<String, airflow::Db>,
    /// One Kafka client per cluster (brokers and client properties).
    clusters: HashMap<BTreeMap<String, String>, Arc<kafka::Cluster>>,
    /// One Celery event subscription per broker and channel.
    subscriptions: celery::Subscriptions,
}

impl Shared {
    /// Closes the connections no source uses any more (their sources were removed by a reload).
    pub fn prune(&mut self) {
        self.databases.retain(|_, db| db.in_use());
        self.clusters.retain(|_, cluster| Arc::strong_count(cluster) > 1);
    }
}

/// What one successful poll measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    /// The source's value: queue depth, lag, task count.
    pub value: f64,
    /// Entries that could not be understood and were left out (counted, never fatal).
    pub skipped: u64,
    /// The most replicas this value can use (a Kafka group: its partitions), if limited.
    pub cap: Option<u32>,
    /// Round the recommendation up to a factor of `cap` (a Kafka group's partitions), so that
    /// every consumer gets as many (`ensure_even_distribution`).
    pub even: bool,
    /// Per-partition detail (Kafka).
    pub partitions: Vec<kafka::lag::PartitionLag>,
    /// The load behind the value, as far as the source can see it (for the wait objective):
    /// what waits, what runs, and cumulative counters of arrived and finished tasks.
    pub load: Load,
    /// What a Celery source's event stream says about its workers (`events = true`).
    pub events: Option<celery::EventsStatus>,
}

impl Reading {
    /// What the decision core sees of this reading.
    pub fn observation(&self) -> Observation {
        Observation::Answered(Sample { value: self.value, cap: self.cap, even: self.even, load: self.load })
    }
}

/// Why a poll failed. Each variant has a bounded metric label.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SourceError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("query failed: {0}")]
    Query(String),
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl SourceError {
    pub fn label(&self) -> &'static str {
        match self {
            SourceError::Connect(_) => "connect",
            SourceError::Timeout(_) => "timeout",
            SourceError::Query(_) => "query",
            SourceError::Protocol(_) => "protocol",
        }
    }

    pub const LABELS: [&'static str; 4] = ["connect", "timeout", "query", "protocol"];
}

/// A live source: its poll timeout and one of a closed set of kinds, dispatched by match.
pub struct Source {
    timeout: Duration,
    backend: Backend,
}

enum Backend {
    // Boxed: a Redis client is large beside the other kinds.
    Celery(Box<celery::CelerySource>),
    Airflow(airflow::AirflowSource),
    Kafka(kafka::KafkaSource),
}

impl Source {
    /// Builds a source with connections of its own; they are made lazily by the first poll.
    pub fn new(spec: &SourceSpec) -> Result<Source, SourceError> {
        Source::with_shared(spec, &mut Shared::default())
    }

    /// Builds a source, sharing connections with the other sources built with `shared`.
    pub fn with_shared(spec: &SourceSpec, shared: &mut Shared) -> Result<Source, SourceError> {
        let url = || spec.url.clone().ok_or_else(|| SourceError::Connect("no url configured".into()));
        let backend = match &spec.settings {
            Settings::Celery(settings) => Backend::Celery(Box::new(celery::CelerySource::new(
                url()?,
                settings.clone(),
                spec.timeout,
                &mut shared.subscriptions,
            )?)),
            Settings::Airflow(settings) => {
                let url = url()?;
                let db = match shared.databases.get(url.expose()) {
                    Some(db) => db.clone(),
                    None => {
                        let db = airflow::AirflowSource::open(&url, spec.timeout)?;
                        shared.databases.insert(url.expose().to_owned(), db.clone());
                        db
                    }
                };
                Backend::Airflow(airflow::AirflowSource::new(db, settings.clone()))
            }
            Settings::Kafka(settings) => {
                let properties = settings.client_properties();
                let cluster = match shared.clusters.get(&properties) {
                    Some(cluster) => cluster.clone(),
                    None => {
                        let cluster = Arc::new(kafka::Cluster::connect(&properties)?);
                        shared.clusters.insert(properties, cluster.clone());
                        cluster
                    }
                };
                Backend::Kafka(kafka::KafkaSource::new(cluster, settings.clone(), spec.timeout))
            }
        };
        Ok(Source { timeout: spec.timeout, backend })
    }

    pub fn kind(&self) -> Kind {
        match self.backend {
            Backend::Celery(_) => Kind::Celery,
            Backend::Airflow(_) => Kind::Airflow,
            Backend::Kafka(_) => Kind::Kafka,
        }
    }

    /// Whether per-partition lag is exported as a metric (a Kafka source's `partition_metrics`).
    pub fn partition_metrics(&self) -> bool {
        matches!(&self.backend, Backend::Kafka(source) if source.partition_metrics())
    }

    /// Running tasks per worker hostname (Airflow) or pod name (Celery with `events`), for
    /// sources that know them; `None` otherwise.
    pub async fn busy_hosts(&self) -> Option<Result<BTreeMap<String, u32>, SourceError>> {
        let busy = async {
            match &self.backend {
                Backend::Airflow(source) => Some(source.busy_hosts().await),
                Backend::Celery(source) => source.busy_hosts().await,
                Backend::Kafka(_) => None,
            }
        };
        tokio::time::timeout(self.timeout, busy).await.unwrap_or(Some(Err(SourceError::Timeout(self.timeout))))
    }

    /// Polls once, bounded by the source's timeout.
    pub async fn poll(&self) -> Result<Reading, SourceError> {
        let poll = async {
            match &self.backend {
                Backend::Celery(source) => source.poll().await,
                Backend::Airflow(source) => source.poll().await,
                Backend::Kafka(source) => source.poll().await,
            }
        };
        tokio::time::timeout(self.timeout, poll).await.unwrap_or(Err(SourceError::Timeout(self.timeout)))
    }
}
