//! Answers, and the `Status` objects the real server sends with its errors
//! (k8s.io/apimachinery pkg/api/errors: `NewNotFound`, `NewConflict`, `NewInvalid`, …).

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resource::Resource;

pub fn respond(code: StatusCode, body: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub fn ok(body: Value) -> Response {
    respond(StatusCode::OK, &body)
}

/// A `Status` object with `details` (which may be `{}`).
pub fn status_object(code: u16, reason: &str, message: &str, details: Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "details": details, "code": code,
    })
}

/// A failure answer with this code, reason and message.
pub fn failure(code: u16, reason: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, &status_object(code, reason, message, json!({})))
}

fn details(resource: Resource, name: &str) -> Value {
    json!({ "name": name, "group": resource.group(), "kind": resource.plural() })
}

pub fn not_found(resource: Resource, name: &str) -> Response {
    let message = format!("{} \"{name}\" not found", resource.qualified());
    respond(StatusCode::NOT_FOUND, &status_object(404, "NotFound", &message, details(resource, name)))
}

/// 404 for a path the server does not serve, as the real server answers one.
pub fn no_route() -> Response {
    failure(404, "NotFound", "the server could not find the requested resource")
}

pub fn method_not_allowed(verb: &str, resource_path: &str) -> Response {
    failure(405, "MethodNotAllowed", &format!("{verb} is not supported on {resource_path} by this test server"))
}

pub fn already_exists(resource: Resource, name: &str) -> Response {
    let message = format!("{} \"{name}\" already exists", resource.qualified());
    respond(StatusCode::CONFLICT, &status_object(409, "AlreadyExists", &message, details(resource, name)))
}

/// The optimistic-lock conflict (`OptimisticLockErrorMsg` in k8s.io/apiserver pkg/registry/generic/registry).
pub fn conflict(resource: Resource, name: &str) -> Response {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        resource.qualified()
    );
    respond(StatusCode::CONFLICT, &status_object(409, "Conflict", &message, details(resource, name)))
}

pub fn bad_request(message: &str) -> Response {
    failure(400, "BadRequest", message)
}

/// What API Priority and Fairness answers when it sheds load: 429 with `Retry-After` in whole
/// seconds (k8s.io/apiserver pkg/server/filters/priority-and-fairness.go).
pub fn too_many_requests(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs().max(1);
    let body = status_object(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        json!({ "retryAfterSeconds": seconds }),
    );
    let mut response = respond(StatusCode::TOO_MANY_REQUESTS, &body);
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

/// An injected server error, with the reason the real server gives that code.
pub fn server_error(code: u16) -> Response {
    let reason = match code {
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        429 => "TooManyRequests",
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Unknown",
    };
    failure(code, reason, &format!("Internal error occurred: injected fault ({code})"))
}

/// The Status of a watch asked to resume from a compacted version: 410 `Expired`, as the watch
/// cache answers it (`getAllEventsSinceLocked` in k8s.io/apiserver pkg/storage/cacher).
pub fn expired(asked: u64, oldest: u64) -> Value {
    status_object(410, "Expired", &format!("too old resource version: {asked} ({oldest})"), json!({}))
}

/// One field error, as k8s.io/apimachinery pkg/util/validation/field prints it.
pub struct FieldError {
    pub field: &'static str,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, `FieldValueNotSupported`.
    pub reason: &'static str,
    /// `Invalid value: 0: must be greater than 0`.
    pub message: String,
}

impl FieldError {
    pub fn invalid(field: &'static str, value: &Value, detail: &str) -> FieldError {
        FieldError { field, reason: "FieldValueInvalid", message: format!("Invalid value: {value}: {detail}") }
    }

    pub fn required(field: &'static str, detail: &str) -> FieldError {
        FieldError { field, reason: "FieldValueRequired", message: format!("Required value: {detail}") }
    }

    pub fn forbidden(field: &'static str, detail: &str) -> FieldError {
        FieldError { field, reason: "FieldValueForbidden", message: format!("Forbidden: {detail}") }
    }

    pub fn not_supported(field: &'static str, value: &Value, supported: &str) -> FieldError {
        let message = format!("Unsupported value: {value}: supported values: {supported}");
        FieldError { field, reason: "FieldValueNotSupported", message }
    }
}

/// 422 `Invalid` with one cause per field error (`NewInvalid`), for an object of this kind and
/// API group (`""`: core).
pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Response {
    let listed: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    let summary = match listed.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let qualified = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
    let message = format!("{qualified} \"{name}\" is invalid: {summary}");
    let causes: Vec<Value> =
        errors.iter().map(|e| json!({ "reason": e.reason, "message": e.message, "field": e.field })).collect();
    let details = json!({ "name": name, "group": group, "kind": kind, "causes": causes });
    respond(StatusCode::UNPROCESSABLE_ENTITY, &status_object(422, "Invalid", &message, details))
}
