//! One request, parsed once: which verb on which object, with its query, body and caller.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::Value;

use super::resource::Resource;

/// A request as the handlers see it.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: Query,
    /// The Kubernetes verb: get, list, watch, create, update, patch or delete.
    pub verb: &'static str,
    /// `None` for discovery and for paths the server does not serve.
    pub resource: Option<Resource>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub content_type: String,
    /// The bearer token (each test daemon may have its own).
    pub token: Option<String>,
    /// The JSON body, `Null` when empty.
    pub body: Value,
    /// Why the body is not JSON, if it is not.
    pub body_error: Option<String>,
}

impl Call {
    pub fn parse(method: Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Call {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let token = header("authorization").strip_prefix("Bearer ").map(str::to_owned);
        let (body, body_error) = match serde_json::from_slice(body) {
            _ if body.is_empty() => (Value::Null, None),
            Ok(value) => (value, None),
            Err(error) => (Value::Null, Some(error.to_string())),
        };
        let query = Query::parse(uri.query().unwrap_or(""));
        let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        let (resource, namespace, name, subresource) = locate(&segments).unwrap_or_default();
        let verb = verb(&method, name.is_some(), query.flag("watch"));
        Call {
            path: uri.path().to_owned(),
            query,
            verb,
            resource,
            namespace,
            name,
            subresource,
            content_type: header("content-type"),
            token,
            body,
            body_error,
            method,
        }
    }

    /// `deployments/scale`, `pods`, or `""` off the resource paths.
    pub fn resource_path(&self) -> String {
        match (self.resource, &self.subresource) {
            (Some(r), Some(sub)) => format!("{}/{sub}", r.plural()),
            (Some(r), None) => r.plural().to_owned(),
            (None, _) => String::new(),
        }
    }
}

type Location = (Option<Resource>, Option<String>, Option<String>, Option<String>);

/// `/api/v1/…` or `/apis/GROUP/v1/…`, then an optional `namespaces/NS`, then
/// `RESOURCE[/NAME[/SUBRESOURCE]]`.
fn locate(segments: &[&str]) -> Option<Location> {
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    let resource = Resource::find(group, version, plural)?;
    Some((Some(resource), namespace, name.map(str::to_owned), subresource.map(str::to_owned)))
}

fn verb(method: &Method, named: bool, watch: bool) -> &'static str {
    match (method.as_str(), named, watch) {
        ("GET", _, true) => "watch",
        ("GET", true, _) => "get",
        ("GET", false, _) => "list",
        ("POST", ..) => "create",
        ("PUT", ..) => "update",
        ("PATCH", ..) => "patch",
        ("DELETE", ..) => "delete",
        _ => "unknown",
    }
}

/// Query parameters, percent-decoded.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// As sent.
    pub raw: String,
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let pairs = raw.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")));
        Query { raw: raw.to_owned(), pairs: pairs.map(|(k, v)| (decode(k), decode(v))).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: `true` or `1`.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

/// Percent-decoding, `+` as a space (the form encoding clients use for query strings).
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
