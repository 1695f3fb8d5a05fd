//! Celery's event messages as kombu publishes them on Redis: pure decoding, no I/O.
//!
//! A worker's `EventDispatcher` (celery `celery/events/dispatcher.py`) publishes each event to
//! the `celeryev` exchange, which on Redis is a fanout exchange (`celery/events/event.py`,
//! `get_exchange`) that kombu delivers with `PUBLISH` (`kombu/transport/redis.py`,
//! `Channel._put_fanout`). The payload is kombu's message envelope, as in a queue list:
//!
//! ```json
//! {"body": "<base64>", "content-type": "application/json", "content-encoding": "utf-8",
//!  "headers": {"hostname": "celery@pod"},
//!  "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"}, …}}
//! ```
//!
//! and the body is one event (`{"type": "worker-heartbeat", "hostname": …, "freq": 2.0,
//! "active": 1, "processed": 10, …}`) or, for task events a worker buffered (routing key
//! `task.multi`, `EventDispatcher.flush`), a list of them (`EventReceiver._receive`).

use std::borrow::Cow;

use base64::Engine;
use serde::Deserialize;

/// One event, as far as the autoscaler reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// `worker-online` or `worker-heartbeat`: the worker's tasks running now (`active`), its total
    /// so far (`processed`) and its heartbeat interval (`freq`, seconds).
    Heartbeat { hostname: Cow<'a, str>, freq: f64, active: u32, processed: u64 },
    /// `worker-offline`: a warm shutdown.
    Offline { hostname: Cow<'a, str> },
    /// A `task-*` event sent by a worker (not `task-sent`, which a client sends).
    Task { hostname: Cow<'a, str>, kind: TaskEvent },
}

/// The task events that count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TaskEvent {
    /// The worker took the task from the queue (it may wait in its prefetch buffer).
    Received,
    Started,
    /// Finished; `runtime` in seconds (`Request.on_success`).
    Succeeded {
        runtime: f64,
    },
    Failed,
    /// Finished this run and went back to the queue.
    Retried,
    /// Any other (`task-revoked`, `task-rejected`…): only says the worker is alive.
    Other,
}

/// Why a message could not be read (a bounded set, for debugging; counted as skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("not a kombu message envelope")]
    Envelope,
    #[error("not JSON (event_serializer must be \"json\", Celery's default)")]
    ContentType,
    #[error("the body is not valid base64")]
    Base64,
    #[error("the body is not a Celery event or a list of them")]
    Body,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(rename = "content-type", default)]
    content_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    properties: Option<Properties<'a>>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(default, borrow)]
    body_encoding: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    hostname: Option<Cow<'a, str>>,
    #[serde(default)]
    freq: Option<f64>,
    #[serde(default)]
    active: Option<u32>,
    #[serde(default)]
    processed: Option<u64>,
    #[serde(default)]
    runtime: Option<f64>,
}

/// Decodes one published message into its events, the body decoded into `body` (so that the
/// events can borrow from it). Events of groups other than `worker` and `task` and `task-sent`
/// are left out; an event without a hostname is left out.
pub fn decode<'b>(payload: &[u8], body: &'b mut Vec<u8>) -> Result<Vec<Event<'b>>, Unreadable> {
    let envelope: Envelope<'_> = serde_json::from_slice(payload).map_err(|_| Unreadable::Envelope)?;
    if envelope.content_type.as_deref().is_some_and(|t| t != "application/json") {
        return Err(Unreadable::ContentType);
    }
    body.clear();
    let base64 = envelope.properties.and_then(|p| p.body_encoding).is_some_and(|e| e == "base64");
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode_vec(envelope.body.as_bytes(), body)
            .map_err(|_| Unreadable::Base64)?;
    } else {
        body.extend_from_slice(envelope.body.as_bytes());
    }
    let raw: Vec<RawEvent<'b>> = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body).map_err(|_| Unreadable::Body)?,
        _ => vec![serde_json::from_slice(body).map_err(|_| Unreadable::Body)?],
    };
    Ok(raw.into_iter().filter_map(RawEvent::into_event).collect())
}

impl<'a> RawEvent<'a> {
    fn into_event(self) -> Option<Event<'a>> {
        let hostname = self.hostname?;
        let (group, subject) = self.kind.split_once('-')?;
        match (group, subject) {
            ("worker", "online" | "heartbeat") => Some(Event::Heartbeat {
                hostname,
                freq: self.freq.filter(|f| f.is_finite() && *f > 0.0).unwrap_or(super::state::DEFAULT_FREQ),
                active: self.active.unwrap_or(0),
                processed: self.processed.unwrap_or(0),
            }),
            ("worker", "offline") => Some(Event::Offline { hostname }),
            ("task", "sent") | ("worker", _) => None,
            ("task", subject) => {
                let kind = match subject {
                    "received" => TaskEvent::Received,
                    "started" => TaskEvent::Started,
                    "succeeded" => TaskEvent::Succeeded {
                        runtime: self.runtime.filter(|r| r.is_finite() && *r >= 0.0).unwrap_or(0.0),
                    },
                    "failed" => TaskEvent::Failed,
                    "retried" => TaskEvent::Retried,
                    _ => TaskEvent::Other,
                };
                Some(Event::Task { hostname, kind })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A heartbeat captured from a real Celery 5.7 worker (`redis-cli psubscribe '*'`).
    const HEARTBEAT: &str = r#"{"body": "eyJob3N0bmFtZSI6ICJjZWxlcnlAZmFrZS1wb2QtMSIsICJ1dGNvZmZzZXQiOiAwLjAsICJwaWQiOiAzMjQ0MSwgImNsb2NrIjogMTAsICJmcmVxIjogMS4wLCAiYWN0aXZlIjogMiwgInByb2Nlc3NlZCI6IDIsICJsb2FkYXZnIjogWzYuNDIsIDQuOTYsIDMuNzhdLCAic3dfaWRlbnQiOiAicHktY2VsZXJ5IiwgInN3X3ZlciI6ICI1LjcuMCIsICJzd19zeXMiOiAiTGludXgiLCAidGltZXN0YW1wIjogMTc5NjM0ODk2MS4yODI0NDE2LCAidHlwZSI6ICJ3b3JrZXItaGVhcnRiZWF0In0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"hostname": "celery@fake-pod-1"}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "0d9b3ded-c633-4b68-8a40-9db2ce735a6a"}}"#;

    /// A `task.multi` batch from the same worker: a task received and another started.
    const BATCH: &str = r#"{"body": "W3siaG9zdG5hbWUiOiAiY2VsZXJ5QGZha2UtcG9kLTEiLCAidXRjb2Zmc2V0IjogMC4wLCAicGlkIjogMzI0NDEsICJjbG9jayI6IDcsICJ1dWlkIjogIjYyN2U0MDAxLTZmMGQtNDc5MS1hYjlkLTNkNzgxODBkNjE3NiIsICJuYW1lIjogImV2dGVzdC5zbGVlcCIsICJhcmdzIjogIlswLjVdIiwgImt3YXJncyI6ICJ7fSIsICJyb290X2lkIjogIjYyN2U0MDAxLTZmMGQtNDc5MS1hYjlkLTNkNzgxODBkNjE3NiIsICJwYXJlbnRfaWQiOiBudWxsLCAicmV0cmllcyI6IDAsICJldGEiOiBudWxsLCAiZXhwaXJlcyI6IG51bGwsICJ0aW1lc3RhbXAiOiAxNzk2MzQ4OTYwLjkxNzE0MTcsICJ0eXBlIjogInRhc2stcmVjZWl2ZWQifSwgeyJob3N0bmFtZSI6ICJjZWxlcnlAZmFrZS1wb2QtMSIsICJ1dGNvZmZzZXQiOiAwLjAsICJwaWQiOiAzMjQ0MSwgImNsb2NrIjogOCwgInV1aWQiOiAiOWQzODY0ODgtODMxNC00Y2M5LTk0MzgtZGQ4NWQ1MjM0OWMzIiwgInRpbWVzdGFtcCI6IDE3OTYzNDg5NjAuOTE3MzE4NiwgInR5cGUiOiAidGFzay1zdGFydGVkIn1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"hostname": "celery@fake-pod-1"}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "d4dc44e6-e98e-455c-97ff-ada77a0ef0c3"}}"#;

    /// A message whose body is not base64-encoded (kombu reads those too: no `body_encoding`).
    fn plain(events: &serde_json::Value) -> String {
        json!({"body": events.to_string(), "content-type": "application/json"}).to_string()
    }

    fn events(payload: &str) -> Result<Vec<Event<'static>>, Unreadable> {
        let mut body = Vec::new();
        decode(payload.as_bytes(), &mut body).map(|events| {
            events
                .into_iter()
                .map(|e| match e {
                    Event::Heartbeat { hostname, freq, active, processed } => {
                        Event::Heartbeat { hostname: hostname.into_owned().into(), freq, active, processed }
                    }
                    Event::Offline { hostname } => Event::Offline { hostname: hostname.into_owned().into() },
                    Event::Task { hostname, kind } => Event::Task { hostname: hostname.into_owned().into(), kind },
                })
                .collect()
        })
    }

    #[test]
    fn reads_what_a_real_worker_publishes() {
        let host: Cow<'static, str> = "celery@fake-pod-1".into();
        assert_eq!(
            events(HEARTBEAT),
            Ok(vec![Event::Heartbeat { hostname: host.clone(), freq: 1.0, active: 2, processed: 2 }])
        );
        assert_eq!(
            events(BATCH),
            Ok(vec![
                Event::Task { hostname: host.clone(), kind: TaskEvent::Received },
                Event::Task { hostname: host, kind: TaskEvent::Started },
            ])
        );
    }

    #[test]
    fn leaves_out_what_does_not_count() {
        let batch = json!([
            {"type": "task-succeeded", "hostname": "w@a", "runtime": 1.5, "uuid": "x", "result": "None"},
            {"type": "task-failed", "hostname": "w@a", "exception": "E()"},
            {"type": "task-retried", "hostname": "w@a"},
            {"type": "task-revoked", "hostname": "w@a"},
            {"type": "task-sent", "hostname": "client@host", "queue": "q"},
            {"type": "worker-offline", "hostname": "w@b"},
            {"type": "worker-custom", "hostname": "w@b"},
            {"type": "task-received"},
            {"type": "custom-thing", "hostname": "w@a"},
        ]);
        let host = |h: &'static str| -> Cow<'static, str> { h.into() };
        assert_eq!(
            events(&plain(&batch)),
            Ok(vec![
                Event::Task { hostname: host("w@a"), kind: TaskEvent::Succeeded { runtime: 1.5 } },
                Event::Task { hostname: host("w@a"), kind: TaskEvent::Failed },
                Event::Task { hostname: host("w@a"), kind: TaskEvent::Retried },
                Event::Task { hostname: host("w@a"), kind: TaskEvent::Other },
                Event::Offline { hostname: host("w@b") },
            ])
        );
        let beat = json!({"type": "worker-heartbeat", "hostname": "w@a", "freq": -1, "active": 3});
        assert_eq!(
            events(&plain(&beat)),
            Ok(vec![Event::Heartbeat { hostname: host("w@a"), freq: 2.0, active: 3, processed: 0 }]),
            "a nonsense freq falls back to Celery's default"
        );
    }

    #[test]
    fn an_unreadable_message_says_why() {
        let cases = [
            ("not json", Unreadable::Envelope),
            (r#"{"nobody": 1}"#, Unreadable::Envelope),
            (r#"{"body": "eA==", "content-type": "application/x-python-serialize"}"#, Unreadable::ContentType),
            (r#"{"body": "!!", "properties": {"body_encoding": "base64"}}"#, Unreadable::Base64),
            (r#"{"body": "eyJubyI6IDF9", "properties": {"body_encoding": "base64"}}"#, Unreadable::Body),
            (r#"{"body": "[1, 2]"}"#, Unreadable::Body),
        ];
        for (payload, why) in cases {
            assert_eq!(events(payload), Err(why), "{payload}");
        }
        let big = json!({"type": "worker-heartbeat", "hostname": "w@a", "active": 1e12});
        assert_eq!(events(&plain(&big)), Err(Unreadable::Body), "an active count beyond u32");
    }
}
