//! Queue sources: each kind is one small file with its settings and one `poll()`.
//!
//! A source is polled at most once per cycle, whatever the number of targets that use it; a
//! failed poll is an observation (an error with a bounded label), never a dead loop.

pub mod celery;

use std::time::Duration;

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

/// The kind-specific part of a source's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Settings {
    Celery(celery::CelerySettings),
}

/// The kinds of source, as named in `kind = "…"` and in metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Celery,
}

impl Kind {
    pub const ALL: [Kind; 1] = [Kind::Celery];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Celery => "celery",
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
        }
    }
}

/// What one successful poll measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    /// The source's value: queue depth, lag, task count.
    pub value: f64,
    /// Entries that could not be understood and were left out (counted, never fatal).
    pub skipped: u64,
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
    Celery(celery::CelerySource),
}

impl Source {
    /// Builds the source; connections are made lazily by the first poll.
    pub fn new(spec: &SourceSpec) -> Result<Source, SourceError> {
        let backend = match &spec.settings {
            Settings::Celery(settings) => {
                let url = spec.url.clone().ok_or_else(|| SourceError::Connect("no url configured".into()))?;
                Backend::Celery(celery::CelerySource::new(url, settings.clone(), spec.timeout)?)
            }
        };
        Ok(Source { timeout: spec.timeout, backend })
    }

    pub fn kind(&self) -> Kind {
        match self.backend {
            Backend::Celery(_) => Kind::Celery,
        }
    }

    /// Polls once, bounded by the source's timeout.
    pub async fn poll(&self) -> Result<Reading, SourceError> {
        let poll = async {
            match &self.backend {
                Backend::Celery(source) => source.poll().await,
            }
        };
        tokio::time::timeout(self.timeout, poll).await.unwrap_or(Err(SourceError::Timeout(self.timeout)))
    }
}
