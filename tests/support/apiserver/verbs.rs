//! get, list, create, update (PUT) and patch of whole objects, with the real server's checks:
//! resourceVersion preconditions, 409 AlreadyExists, 400 for a name or namespace that disagrees
//! with the URL, 422 for invalid fields.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::call::Call;
use super::objects::merge;
use super::resource::Resource;
use super::selector::Selector;
use super::status::{FieldError, already_exists, bad_request, conflict, failure, invalid, not_found, ok, respond};
use super::store::{Key, Store};
use super::validation::{decode_error, validate};

pub fn get(store: &Store, key: &Key) -> Response {
    match store.get(key) {
        Some(object) => ok(object.clone()),
        None => not_found(key.resource, &key.name),
    }
}

pub fn list(store: &Store, call: &Call, resource: Resource) -> Response {
    let selector = match Selector::from_query(&call.query) {
        Ok(selector) => selector,
        Err(error) => return bad_request(&error),
    };
    let items = store.list(resource, call.namespace.as_deref(), &selector);
    ok(json!({
        "apiVersion": resource.api_version(),
        "kind": format!("{}List", resource.kind()),
        "metadata": { "resourceVersion": store.version().to_string() },
        "items": items,
    }))
}

/// POST to the collection: the name comes from `metadata.name` (or `generateName`).
pub fn create(store: &mut Store, call: &Call, resource: Resource) -> Response {
    let namespace = call.namespace.clone().unwrap_or_default();
    let metadata = &call.body["metadata"];
    if metadata["namespace"].as_str().is_some_and(|n| n != namespace) {
        return bad_request("the namespace of the provided object does not match the namespace sent on the request");
    }
    let name = match (metadata["name"].as_str(), metadata["generateName"].as_str()) {
        (Some(name), _) if !name.is_empty() => name.to_owned(),
        (_, Some(prefix)) => format!("{prefix}{:05x}", store.version() + 1),
        _ => {
            let error = FieldError::required("metadata.name", "name or generateName is required");
            return invalid(resource.kind(), resource.group(), "", &[error]);
        }
    };
    let key = Key::new(resource, &namespace, &name);
    if store.get(&key).is_some() {
        return already_exists(resource, &name);
    }
    checked_put(store, key, call.body.clone(), StatusCode::CREATED)
}

/// PUT: replaces the object, if the `metadata.resourceVersion` it carries is the current one.
pub fn update(store: &mut Store, call: &Call, key: &Key) -> Response {
    if let Some(named) = call.body["metadata"]["name"].as_str().filter(|n| *n != key.name) {
        let message = format!("the name of the object ({named}) does not match the name on the URL ({})", key.name);
        return bad_request(&message);
    }
    let Some(current) = store.get(key) else {
        if key.resource.allows_create_on_update() {
            return checked_put(store, key.clone(), call.body.clone(), StatusCode::CREATED);
        }
        return not_found(key.resource, &key.name);
    };
    let asked = call.body["metadata"]["resourceVersion"].as_str().unwrap_or_default();
    let unconditional = asked.is_empty() && key.resource.allows_unconditional_update();
    if !unconditional && asked != current["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
        return conflict(key.resource, &key.name);
    }
    checked_put(store, key.clone(), call.body.clone(), StatusCode::OK)
}

/// PATCH: merge, strategic-merge (merged the same way: the objects here have no lists that a
/// strategic merge would treat differently) and apply; a `metadata.resourceVersion` in the patch
/// is a precondition.
pub fn patch(store: &mut Store, call: &Call, key: &Key) -> Response {
    if call.content_type.starts_with("application/json-patch") {
        return failure(415, "UnsupportedMediaType", "JSON patches are not supported by this test server");
    }
    let Some(mut object) = store.get(key).cloned() else {
        return not_found(key.resource, &key.name);
    };
    let asked = &call.body["metadata"]["resourceVersion"];
    if !asked.is_null() && *asked != object["metadata"]["resourceVersion"] {
        return conflict(key.resource, &key.name);
    }
    merge(&mut object, &call.body);
    checked_put(store, key.clone(), object, StatusCode::OK)
}

/// Stores `object` if it decodes and validates, answering `code` with it as stored.
fn checked_put(store: &mut Store, key: Key, object: Value, code: StatusCode) -> Response {
    if let Some(error) = decode_error(key.resource, &object) {
        return bad_request(&error);
    }
    let mut object = object;
    object["metadata"]["name"] = json!(key.name);
    let errors = validate(key.resource, &object);
    if !errors.is_empty() {
        return invalid(key.resource.kind(), key.resource.group(), &key.name, &errors);
    }
    respond(code, &store.put(key, object))
}
