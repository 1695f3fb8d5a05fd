//! RabbitMQ's management HTTP API, for what AMQP does not say: the messages delivered to
//! consumers and not yet acknowledged (a worker's prefetch, and with `acks_late` the tasks it
//! runs). One request per poll lists the vhost's queues with the two columns read,
//! `GET /api/queues/{vhost}?columns=name,messages_unacknowledged` (rabbitmq-server
//! `deps/rabbitmq_management/priv/www/api/index.html`), where KEDA's HTTP mode sends one request
//! per queue. The figures are the broker's statistics, refreshed every
//! `collect_statistics_interval` (5 s by default), so they trail the AMQP count by up to that.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::secret::SecretUrl;
use crate::source::SourceError;

/// The most of an answer read (a vhost of 100,000 queues lists in about 6 MiB with two columns).
const MAX_BODY: usize = 64 << 20;

/// Where the listing is asked for, and with which credentials.
pub struct Endpoint {
    uri: Uri,
    authorization: Option<HeaderValue>,
}

impl Endpoint {
    /// The vhost's listing under `url` (`http(s)://[user:password@]host[:port][/prefix]`), the
    /// user and password moved into a Basic `Authorization` header. Errors never show the password.
    pub fn parse(url: &SecretUrl, vhost: &str) -> Result<Endpoint, String> {
        let mut parsed = url::Url::parse(url.expose()).map_err(|e| format!("is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("must be an http:// or https:// URL, not {}://", parsed.scheme()));
        }
        let authorization = basic_authorization(&parsed)?;
        // Neither can fail on an http(s) URL, which always has a host and a path.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed
            .path_segments_mut()
            .map_err(|()| "has no path".to_owned())?
            .pop_if_empty()
            .extend(["api", "queues", vhost]);
        parsed.set_query(Some("columns=name,messages_unacknowledged"));
        parsed.set_fragment(None);
        let uri = parsed.as_str().parse().map_err(|e| format!("is not a URL ({e})"))?;
        Ok(Endpoint { uri, authorization })
    }
}

fn basic_authorization(url: &url::Url) -> Result<Option<HeaderValue>, String> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(None);
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials = format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or("")));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| "has a user or password that is not valid in a header".to_owned())?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// One queue of the listing; a queue the statistics have not reached yet has no count.
#[derive(Deserialize)]
struct QueueStats {
    name: String,
    #[serde(default)]
    messages_unacknowledged: Option<u64>,
}

/// A client of one broker's management API, for one vhost and one set of queues.
pub struct Management {
    url: SecretUrl,
    endpoint: Endpoint,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    queues: HashSet<String>,
}

impl Management {
    pub fn new(url: &SecretUrl, vhost: &str, queues: &[String]) -> Result<Self, SourceError> {
        let endpoint =
            Endpoint::parse(url, vhost).map_err(|e| SourceError::Connect(format!("management_url {url} {e}")))?;
        Ok(Management {
            url: url.clone(),
            endpoint,
            client: Client::builder(TokioExecutor::new()).build(connector()?),
            queues: queues.iter().cloned().collect(),
        })
    }

    /// Σ `messages_unacknowledged` over the source's queues (a missing queue has none).
    pub async fn unacked(&self) -> Result<u64, SourceError> {
        let mut request = Request::get(self.endpoint.uri.clone());
        if let Some(authorization) = &self.endpoint.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let request = request.body(Empty::new()).map_err(|e| SourceError::Query(format!("management API: {e}")))?;
        let response = self.client.request(request).await.map_err(|e| {
            SourceError::Connect(self.url.scrub(&format!("management API at {}: {}", self.url, chain(&e))))
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| SourceError::Connect(format!("management API: reading the answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(SourceError::Query(self.status_message(status)));
        }
        let listing: Vec<QueueStats> = serde_json::from_slice(&body)
            .map_err(|e| SourceError::Protocol(format!("management API: not a queue listing: {e}")))?;
        Ok(listing
            .iter()
            .filter(|q| self.queues.contains(&q.name))
            .filter_map(|q| q.messages_unacknowledged)
            .fold(0, u64::saturating_add))
    }

    fn status_message(&self, status: StatusCode) -> String {
        let hint = match status {
            StatusCode::UNAUTHORIZED => ": check the user and password of management_url",
            StatusCode::FORBIDDEN => ": the user needs the `monitoring` tag and access to the vhost",
            StatusCode::NOT_FOUND => ": no such vhost (the AMQP URL's path names it)",
            _ => "",
        };
        format!("management API at {} answered {status}{hint}", self.url)
    }
}

/// HTTP and HTTPS, HTTPS checked against the system's roots (as the other sources' TLS is).
fn connector() -> Result<HttpsConnector<HttpConnector>, SourceError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Connect(format!("management API: TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build())
}

/// An error and its causes, `a: b: c` (hyper's own text is only "client error (Connect)").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_url_and_credentials() {
        let url = SecretUrl::new("https://mon%40itor:p%3Ass@rabbit.example.com:15671/rabbitmq/");
        let endpoint = Endpoint::parse(&url, "/").expect("endpoint");
        assert_eq!(
            endpoint.uri.to_string(),
            "https://rabbit.example.com:15671/rabbitmq/api/queues/%2F?columns=name,messages_unacknowledged"
        );
        let expected = base64::engine::general_purpose::STANDARD.encode("mon@itor:p:ss");
        assert_eq!(endpoint.authorization.expect("credentials"), format!("Basic {expected}").as_str());
        let plain = Endpoint::parse(&SecretUrl::new("http://rabbit:15672"), "celery jobs").expect("endpoint");
        assert_eq!(
            plain.uri.to_string(),
            "http://rabbit:15672/api/queues/celery%20jobs?columns=name,messages_unacknowledged"
        );
        assert!(plain.authorization.is_none());
    }

    #[test]
    fn bad_management_urls_are_refused_without_their_password() {
        for url in ["ftp://u:hunter2@rabbit", "u:hunter2@rabbit:15672", "http://u:hunter2@rab bit"] {
            let error = Endpoint::parse(&SecretUrl::new(url), "/").err().expect(url);
            assert!(!error.contains("hunter2"), "{url}: {error}");
        }
    }
}
