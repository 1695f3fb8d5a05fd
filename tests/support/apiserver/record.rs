//! What the server remembers of its callers: every request with its answer, and every replica
//! write through a `scale` subresource.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::call::Call;
use super::faults::Calls;

/// A request as received, and how it was answered.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// Without the query: `/apis/apps/v1/namespaces/data/deployments/worker/scale`.
    pub path: String,
    /// As sent, still percent-encoded: `labelSelector=app%3Dworker&watch=true`.
    pub query: String,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete.
    pub verb: &'static str,
    /// `deployments/scale`, `pods`; empty for discovery.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The JSON body (`Null` when none).
    pub body: Value,
    /// The bearer token of the caller (each test daemon can have its own).
    pub token: Option<String>,
    /// The HTTP status answered (200 for a watch, whatever its events say).
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
    /// How long after arriving it was answered, an injected delay included.
    pub answered_after: Duration,
}

impl Request {
    pub fn from_call(call: &Call, status: u16, at: Instant, delay: Duration) -> Request {
        Request {
            method: call.method.to_string(),
            path: call.path.clone(),
            query: call.query.raw.clone(),
            verb: call.verb,
            resource: call.resource_path(),
            namespace: call.namespace.clone(),
            name: call.name.clone(),
            body: call.body.clone(),
            token: call.token.clone(),
            status,
            at,
            answered_after: at.elapsed() + delay,
        }
    }

    /// Whether `calls` describes this request.
    pub fn is(&self, calls: &Calls) -> bool {
        calls.matches(self.verb, &self.resource, self.namespace.as_deref(), self.name.as_deref())
    }

    /// Whether it was answered with a 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `patch deployments/scale data/worker → 409`: a request in one line, to compare sequences.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, if self.resource.is_empty() { &self.path } else { &self.resource })?;
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => write!(f, " {ns}/{name}")?,
            (Some(ns), None) => write!(f, " {ns}")?,
            (None, Some(name)) => write!(f, " {name}")?,
            (None, None) => {}
        }
        write!(f, " → {}", self.status)
    }
}

/// A successful write to the replicas of a Deployment or StatefulSet, through `scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleWrite {
    /// `Deployment` or `StatefulSet`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub replicas: i64,
    /// `merge`, `apply`, `strategic` or `put`.
    pub method: &'static str,
    pub field_manager: Option<String>,
    /// The bearer token of the writer (each test daemon can have its own).
    pub token: Option<String>,
    /// When the write arrived.
    pub at: Instant,
}
