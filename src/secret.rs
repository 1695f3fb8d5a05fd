//! Connection URLs that may carry credentials: shown only with the password replaced.

use std::fmt;

/// A URL whose `Debug` and `Display` never show the password (or a token in the user part).
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

    /// Replaces every occurrence of this URL's secret in `text` (an error message from a client
    /// library, say) with `***`.
    pub fn scrub(&self, text: &str) -> String {
        match secret_part(&self.0) {
            Some(secret) if !secret.is_empty() => {
                text.replace(self.0.as_str(), &redact(&self.0)).replace(secret, "***")
            }
            _ => text.to_owned(),
        }
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

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`; a user part without a password
/// (`redis://token@host`, often a credential itself) becomes `***`. Anything else is unchanged.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    let userinfo = &rest[..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}://{shown}{}", &rest[at..])
}

/// The password (or lone user part) of a URL, if it has one.
fn secret_part(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let userinfo = &rest[..at];
    Some(userinfo.split_once(':').map_or(userinfo, |(_, password)| password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_lone_user_tokens() {
        let cases = [
            ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
            ("rediss://default:s3cr%40t@cache.example.com:6380", "rediss://default:***@cache.example.com:6380"),
            ("postgres://airflow:pw@db/airflow?sslmode=require", "postgres://airflow:***@db/airflow?sslmode=require"),
            ("redis://token@host/1", "redis://***@host/1"),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://host/0?user=a@b", "redis://host/0?user=a@b"),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown);
            assert_eq!(SecretUrl::new(url).to_string(), shown);
            assert!(!format!("{:?}", SecretUrl::new(url)).contains("hunter2"));
        }
    }

    #[test]
    fn scrub_removes_the_secret_from_library_errors() {
        let url = SecretUrl::new("redis://:hunter2@redis:6379/0");
        let message = "failed to connect to redis://:hunter2@redis:6379/0 (auth hunter2 rejected)";
        let scrubbed = url.scrub(message);
        assert!(!scrubbed.contains("hunter2"), "{scrubbed}");
        assert!(scrubbed.contains("redis://:***@redis:6379/0"), "{scrubbed}");
    }
}
