//! Credentials in connection URLs and librdkafka properties, and the one redaction that every
//! place showing them goes through: logs, errors, Events, `once`/`validate` output, metric labels.
//!
//! A URL shows `***` for the password of its user part (or a lone user part, often a token) and
//! for every query parameter whose name means a secret (`?password=`, `?pass=`, …: sqlx and
//! redis-rs read passwords from the query too). A librdkafka property whose name means a secret
//! shows `***` for its value.

use std::fmt;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Words that mean a secret, as a whole name or as one of its `.`, `_` or `-` separated parts:
/// `pass` (redis-rs `redis+unix://…?pass=`), `password` (sqlx), `sasl.password`,
/// `ssl.key.password`, `ssl.key.pem` (librdkafka), …
const SECRET_WORDS: [&str; 11] =
    ["password", "pass", "passwd", "pwd", "secret", "token", "key", "apikey", "credentials", "jaas", "sslpassword"];
/// Substrings that mean a secret wherever they occur in a name (`client_secret`, `accesstoken`).
const SECRET_PARTS: [&str; 3] = ["password", "secret", "token"];
/// librdkafka properties that carry credentials without saying so in their name.
const SECRET_PROPERTIES: [&str; 1] = ["sasl.oauthbearer.config"];

/// Whether a URL query parameter or a librdkafka property named `name` holds a secret
/// (case-insensitive).
pub fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PROPERTIES.contains(&name.as_str())
        || SECRET_PARTS.iter().any(|part| name.contains(part))
        || name.split(['.', '_', '-']).any(|word| SECRET_WORDS.contains(&word))
}

/// The value to show for librdkafka property `name`.
pub fn shown_property<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret(name) { MASK } else { value }
}

/// `scheme://user:password@host/…?password=…&db=1` → `scheme://user:***@host/…?password=***&db=1`;
/// a user part without a password (`redis://token@host`) becomes `***`. Text that is not a URL is
/// returned unchanged.
pub fn redact(url: &str) -> String {
    let Some(parts) = Parts::of(url) else { return url.to_owned() };
    let mut shown = format!("{}://", parts.scheme);
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => shown.push_str(&format!("{user}:{MASK}@")),
            None => shown.push_str(&format!("{MASK}@")),
        }
    }
    shown.push_str(parts.location);
    if let Some(query) = parts.query {
        shown.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret(&percent_decode(name)) => format!("{name}={MASK}"),
                _ => pair.to_owned(),
            })
            .collect();
        shown.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = parts.fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// The secrets of a URL, as written and percent-decoded: what must never appear in any output.
fn url_secrets(url: &str) -> Vec<String> {
    let Some(parts) = Parts::of(url) else { return Vec::new() };
    let password = parts.userinfo.map(|u| u.split_once(':').map_or(u, |(_, password)| password));
    let query = parts.query.into_iter().flat_map(|q| q.split('&')).filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        is_secret(&percent_decode(name)).then_some(value)
    });
    password.into_iter().chain(query).flat_map(|s| [s.to_owned(), percent_decode(s)]).collect()
}

/// Replaces each of `secrets` in `text` with `***`, longest first (so that a secret containing
/// another is masked whole). Empty secrets are left alone.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.into_iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), MASK))
}

/// A URL split where its credentials can be: `scheme://[userinfo@]location[?query][#fragment]`.
struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    /// Host, port and path.
    location: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Option<Parts<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (userinfo, rest) = match rest[..authority_end].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (location, query) = match rest.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (rest, None),
        };
        Some(Parts { scheme, userinfo, location, query, fragment })
    }
}

/// `%XX` escapes and `+` decoded (invalid escapes kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL whose `Debug` and `Display` never show its secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` (an error message from a client library, say) with this URL shown redacted and
    /// every one of its secrets replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        scrub(&text.replace(self.0.as_str(), &redact(&self.0)), &url_secrets(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", redact(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_user_passwords_lone_user_tokens_and_secret_query_parameters() {
        let cases = [
            ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
            ("rediss://default:s3cr%40t@cache.example.com:6380", "rediss://default:***@cache.example.com:6380"),
            ("postgres://airflow:pw@db/airflow?sslmode=require", "postgres://airflow:***@db/airflow?sslmode=require"),
            ("redis://token@host/1", "redis://***@host/1"),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://host/0?user=a@b", "redis://host/0?user=a@b"),
            ("postgres://airflow@db/airflow?password=hunter2", "postgres://***@db/airflow?password=***"),
            (
                "postgres://db/a?sslmode=verify-full&PassWord=x&user=u",
                "postgres://db/a?sslmode=verify-full&PassWord=***&user=u",
            ),
            ("redis+unix:///run/redis.sock?db=14&pass=hunter2", "redis+unix:///run/redis.sock?db=14&pass=***"),
            (
                "mysql://root@db/airflow?pwd=x&ssl-mode=VERIFY_IDENTITY",
                "mysql://***@db/airflow?pwd=***&ssl-mode=VERIFY_IDENTITY",
            ),
            ("postgres://db/a?pass%77ord=x", "postgres://db/a?pass%77ord=***"),
            ("postgres://db/a?sslpassword=x&sslkey=/k.pem", "postgres://db/a?sslpassword=***&sslkey=/k.pem"),
            ("redis://u:p@host/0?token=t#insecure", "redis://u:***@host/0?token=***#insecure"),
            ("not a url?password=x", "not a url?password=x"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
            assert_eq!(SecretUrl::new(url).to_string(), shown);
            assert_eq!(format!("{:?}", SecretUrl::new(url)), format!("SecretUrl({shown})"));
        }
    }

    #[test]
    fn secret_names_are_recognised_whatever_their_case_or_separator() {
        for name in [
            "password",
            "PASS",
            "passwd",
            "pwd",
            "secret",
            "token",
            "sslpassword",
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "client_secret",
            "AccessToken",
            "api-key",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["user", "sslmode", "sslrootcert", "db", "security.protocol", "sasl.username", "passive", "host"] {
            assert!(!is_secret(name), "{name}");
        }
        assert_eq!(shown_property("sasl.password", "hunter2"), "***");
        assert_eq!(shown_property("sasl.username", "svc"), "svc");
    }

    #[test]
    fn scrub_removes_every_secret_of_the_url_from_library_errors() {
        let url = SecretUrl::new("postgres://u:pa%2Fss@db/a?password=hunter2&sslmode=disable");
        let message = "connect to postgres://u:pa%2Fss@db/a?password=hunter2&sslmode=disable: auth pa/ss, hunter2";
        let scrubbed = url.scrub(message);
        for secret in ["pa%2Fss", "pa/ss", "hunter2"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert!(scrubbed.contains("postgres://u:***@db/a?password=***&sslmode=disable"), "{scrubbed}");
    }

    #[test]
    fn scrub_masks_secrets_longest_first() {
        let secrets = ["abc".to_owned(), "abcdef".to_owned(), String::new()];
        assert_eq!(scrub("saw abcdef and abc as svc", &secrets), "saw *** and *** as svc");
    }
}
