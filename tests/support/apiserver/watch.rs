//! Watches, as the real server streams them: newline-delimited `{"type", "object"}` events.
//!
//! - From `resourceVersion` N: the changes after N, then the live ones. From `0` or none: the
//!   current objects as ADDED, then the live changes.
//! - From a version older than the last compaction: one ERROR event carrying a 410 `Expired`
//!   Status, then the end of the stream (the watch cache's answer, which client-go and kube-rs
//!   take as "re-list").
//! - `timeoutSeconds` ends the stream; so do an injected `end_after` and `close_watches()`.
//! - With `allowWatchBookmarks=true`, `send_bookmarks()` sends each a BOOKMARK at the current
//!   version.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::ApiServer;
use super::call::Call;
use super::resource::Resource;
use super::selector::Selector;
use super::status::{bad_request, expired};
use super::store::{Change, Feed, Store, lock};

/// Which changes one watch wants.
struct Filter {
    resource: Resource,
    namespace: Option<String>,
    selector: Selector,
    bookmarks: bool,
}

impl Filter {
    fn wants(&self, change: &Change) -> bool {
        change.resource == self.resource
            && self.namespace.as_deref().is_none_or(|n| change.object["metadata"]["namespace"].as_str() == Some(n))
            && self.selector.matches(&change.object)
    }
}

pub fn open(store: &Store, call: &Call, resource: Resource, end_after: Option<Duration>) -> Response {
    let selector = match Selector::from_query(&call.query) {
        Ok(selector) => selector,
        Err(error) => return bad_request(&error),
    };
    let since = match call.query.get("resourceVersion").filter(|v| !v.is_empty()).map(str::parse::<u64>) {
        Some(Ok(version)) => version,
        None => 0,
        Some(Err(_)) => return bad_request("invalid resourceVersion: not an integer"),
    };
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let filter = Filter { resource, namespace: call.namespace.clone(), selector, bookmarks };
    let first = match first_events(store, &filter, since) {
        Ok(events) => events,
        Err(oldest) => return streaming(stream::iter([line("ERROR", &expired(since, oldest))])),
    };
    let timeout = call.query.get("timeoutSeconds").and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let deadline = [timeout, end_after].into_iter().flatten().min().map(|d| Instant::now() + d);
    streaming(stream::iter(first).chain(live(store.subscribe(), filter, deadline)))
}

/// The events before the live ones; `Err(oldest)` when `since` was compacted away.
fn first_events(store: &Store, filter: &Filter, since: u64) -> Result<Vec<Bytes>, u64> {
    if since == 0 {
        let current = store.list(filter.resource, filter.namespace.as_deref(), &filter.selector);
        return Ok(current.iter().map(|object| line("ADDED", object)).collect());
    }
    Ok(store.changes_since(since)?.filter(|c| filter.wants(c)).map(|c| line(c.kind, &c.object)).collect())
}

/// The live changes, until the deadline, a `Close`, or the server going away.
fn live(feed: Receiver<Feed>, filter: Filter, deadline: Option<Instant>) -> impl Stream<Item = Bytes> {
    stream::unfold((feed, filter), move |(mut feed, filter)| async move {
        loop {
            let next = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, feed.recv()).await.ok()?,
                None => feed.recv().await,
            };
            let event = match next {
                Ok(Feed::Change(change)) if filter.wants(&change) => line(change.kind, &change.object),
                Ok(Feed::Bookmark(version)) if filter.bookmarks => {
                    line("BOOKMARK", &bookmark(filter.resource, version))
                }
                Ok(Feed::Close) | Err(RecvError::Closed) => return None,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
            };
            return Some((event, (feed, filter)));
        }
    })
}

/// A BOOKMARK's object: only the kind and the version (k8s.io/apiserver pkg/storage/cacher).
fn bookmark(resource: Resource, version: u64) -> Value {
    json!({
        "kind": resource.kind(), "apiVersion": resource.api_version(),
        "metadata": { "resourceVersion": version.to_string(), "creationTimestamp": null },
    })
}

fn line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({ "type": kind, "object": object })))
}

fn streaming(events: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let body = Body::from_stream(events.map(Ok::<_, Infallible>));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl ApiServer {
    /// Ends every open watch now, as an API server restarting would.
    pub fn close_watches(&self) {
        lock(&self.store).broadcast(Feed::Close);
    }

    /// Sends a BOOKMARK at the current version to every open watch that allows them.
    pub fn send_bookmarks(&self) {
        let store = lock(&self.store);
        store.broadcast(Feed::Bookmark(store.version()));
    }

    /// Forgets the change history up to now (etcd compaction): a watch that resumes from an
    /// older version is answered 410 Gone. A watcher that has seen everything is not older: to
    /// make one re-list, change anything, compact, then `close_watches()`.
    pub fn compact(&self) {
        lock(&self.store).compact();
    }
}
