//! One handler for every request: parse it, let an injected fault have it or route it, record it
//! with its answer, and hold the answer if a fault asked for a slow one.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use super::call::Call;
use super::discovery;
use super::faults::Fault;
use super::objects::merge;
use super::record::Request;
use super::status::{
    bad_request, conflict, failure, method_not_allowed, no_route, not_found, server_error, too_many_requests,
};
use super::store::{Key, Shared, Store, lock};
use super::verbs;
use super::watch;
use super::workloads::{get_scale, write_scale};

pub async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let call = Call::parse(method, &uri, &headers, &body);
    let (response, delay) = {
        let mut store = lock(&shared);
        let fault = store.faults.take(&call);
        let (response, delay) = answer(&mut store, &call, fault);
        let request = Request::from_call(&call, response.status().as_u16(), arrived, delay);
        store.requests.push(request);
        (response, delay)
    };
    tokio::time::sleep(delay).await;
    response
}

/// The answer, and how long to hold it.
fn answer(store: &mut Store, call: &Call, fault: Option<Fault>) -> (Response, Duration) {
    match fault {
        None => (route(store, call, None), Duration::ZERO),
        Some(Fault::AnswerAfter(delay)) => (route(store, call, None), delay),
        Some(Fault::EndAfter(after)) => (route(store, call, Some(after)), Duration::ZERO),
        Some(Fault::Fail(code)) => (server_error(code), Duration::ZERO),
        Some(Fault::Throttle(retry_after)) => (too_many_requests(retry_after), Duration::ZERO),
        Some(Fault::Conflict(change)) => (conflict_after(store, call, &change.0), Duration::ZERO),
    }
}

/// Another writer changes the object first; then this request loses with 409. (A request that
/// names no object, such as a create, just gets the 409.)
fn conflict_after(store: &mut Store, call: &Call, change: &serde_json::Value) -> Response {
    let Some(key) = key_of(call) else {
        return failure(409, "Conflict", "Operation cannot be fulfilled: injected conflict");
    };
    let Some(mut object) = store.get(&key).cloned() else {
        return not_found(key.resource, &key.name);
    };
    merge(&mut object, change);
    store.put(key.clone(), object);
    conflict(key.resource, &key.name)
}

fn route(store: &mut Store, call: &Call, watch_ends_after: Option<Duration>) -> Response {
    if let Some(error) = &call.body_error {
        return bad_request(&format!("the body is not JSON: {error}"));
    }
    let Some(resource) = call.resource else {
        return if call.method == Method::GET { discovery::answer(&call.path) } else { no_route() };
    };
    if call.name.is_none() {
        return match call.verb {
            "list" => verbs::list(store, call, resource),
            "watch" => watch::open(store, call, resource, watch_ends_after),
            "create" => verbs::create(store, call, resource),
            verb => method_not_allowed(verb, resource.plural()),
        };
    }
    let Some(key) = key_of(call) else { return no_route() };
    match (call.verb, call.subresource.as_deref()) {
        ("get", None) => verbs::get(store, &key),
        ("update", None) => verbs::update(store, call, &key),
        ("patch", None) => verbs::patch(store, call, &key),
        ("get", Some("scale")) if resource.scalable() => get_scale(store, &key),
        ("update" | "patch", Some("scale")) if resource.scalable() => write_scale(store, call, &key),
        (verb, _) => method_not_allowed(verb, &call.resource_path()),
    }
}

/// The object a call names: in a namespace exactly when its resource is namespaced.
fn key_of(call: &Call) -> Option<Key> {
    let resource = call.resource?;
    let name = call.name.as_deref()?;
    match (resource.namespaced(), call.namespace.as_deref()) {
        (true, Some(namespace)) => Some(Key::new(resource, namespace, name)),
        (false, None) => Some(Key::new(resource, "", name)),
        _ => None,
    }
}
