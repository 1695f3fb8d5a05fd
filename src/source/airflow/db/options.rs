//! An Airflow metadata database URL, read the way sqlx reads it (sqlx-postgres and sqlx-mysql
//! `src/options/parse.rs`): the backend, whether the server will be verified, and the query
//! parameters sqlx does not read.

use sqlx::ConnectOptions;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::secret::SecretUrl;
use crate::source::SourceError;

/// The query parameters sqlx-postgres reads (besides `options[NAME]`). It logs any other one with
/// its value — a password, if someone wrote `?pass=…` — so those are removed before sqlx sees
/// the URL.
const POSTGRES_PARAMETERS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The query parameters sqlx-mysql reads; it ignores any other one silently.
const MYSQL_PARAMETERS: [&str; 14] = [
    "sslmode",
    "ssl-mode",
    "sslca",
    "ssl-ca",
    "charset",
    "collation",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "socket",
    "timezone",
    "time-zone",
];

/// Connection options as sqlx would build them from the URL.
pub(super) enum Options {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
}

/// A parsed URL: its options, and the names of the query parameters left out as unknown.
pub(super) struct DbUrl {
    pub options: Options,
    pub ignored: Vec<String>,
}

/// Reads `url` as sqlx does, without the parameters sqlx would not read.
pub(super) fn parse(db_url: &SecretUrl) -> Result<DbUrl, SourceError> {
    let bad = |message: String| SourceError::Connect(format!("bad database URL {db_url}: {}", db_url.scrub(&message)));
    let mut parsed = url::Url::parse(db_url.expose()).map_err(|e| bad(e.to_string()))?;
    let postgres = match parsed.scheme() {
        "postgres" | "postgresql" => true,
        "mysql" | "mariadb" => false,
        _ => return Err(SourceError::Connect(format!("{db_url} is not a postgres:// or mysql:// URL"))),
    };
    let ignored = if postgres {
        remove_parameters(&mut parsed, |name| POSTGRES_PARAMETERS.contains(&name) || name.starts_with("options["))
    } else {
        // sqlx-mysql knows only mysql://; both schemes are "non-special", so the swap cannot fail.
        let _ = parsed.set_scheme("mysql");
        remove_parameters(&mut parsed, |name| MYSQL_PARAMETERS.contains(&name))
    };
    let options = if postgres {
        Options::Postgres(PgConnectOptions::from_url(&parsed).map_err(|e| bad(e.to_string()))?)
    } else {
        Options::MySql(MySqlConnectOptions::from_url(&parsed).map_err(|e| bad(e.to_string()))?)
    };
    Ok(DbUrl { options, ignored })
}

/// Removes the query parameters whose (decoded) name `known` rejects; returns their names.
fn remove_parameters(url: &mut url::Url, known: impl Fn(&str) -> bool) -> Vec<String> {
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let (kept, ignored): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(name, _)| known(name));
    if ignored.is_empty() {
        return Vec::new();
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    ignored.into_iter().map(|(name, _)| name).collect()
}

impl DbUrl {
    /// What an operator should know before this URL is used: an unverified server, parameters
    /// that are ignored.
    pub(super) fn warnings(&self) -> Vec<String> {
        let ignored = self.ignored.iter().map(|name| {
            let hint = match (&self.options, name.as_str()) {
                (Options::MySql(_), "password") => {
                    " (put the password in the user part: mysql://user:PASSWORD@host/db)"
                }
                _ => "",
            };
            format!("query parameter {name:?} is not one the database driver reads: ignored{hint}")
        });
        self.tls_warning().into_iter().chain(ignored).collect()
    }

    /// Why the server's certificate will not be fully checked, if it will not: TLS is not
    /// required, or any certificate is accepted, or its host name is not compared. An explicit
    /// `sslmode=disable` (`ssl-mode=DISABLED`) and Unix sockets are deliberate choices: no warning.
    fn tls_warning(&self) -> Option<String> {
        let (host, mode, advice) = match &self.options {
            Options::Postgres(o) if o.get_socket().is_none() => {
                let mode = match o.get_ssl_mode() {
                    PgSslMode::Disable | PgSslMode::VerifyFull => return None,
                    PgSslMode::Prefer => None,
                    PgSslMode::Allow => Some("sslmode=allow"),
                    PgSslMode::Require => Some("sslmode=require"),
                    PgSslMode::VerifyCa => Some("sslmode=verify-ca checks the CA, not the host name"),
                };
                (o.get_host(), mode, "sslmode=verify-full")
            }
            Options::MySql(o) if o.get_socket().is_none() => {
                let mode = match o.get_ssl_mode() {
                    MySqlSslMode::Disabled | MySqlSslMode::VerifyIdentity => return None,
                    MySqlSslMode::Preferred => None,
                    MySqlSslMode::Required => Some("ssl-mode=REQUIRED"),
                    MySqlSslMode::VerifyCa => Some("ssl-mode=VERIFY_CA checks the CA, not the host name"),
                };
                (o.get_host(), mode, "ssl-mode=VERIFY_IDENTITY")
            }
            _ => return None,
        };
        let mode = mode.map(|m| format!(" ({m})")).unwrap_or_default();
        Some(format!("connection to {host} is not verified{mode}; set {advice}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(url: &str) -> Vec<String> {
        parse(&SecretUrl::new(url)).map(|u| u.warnings()).unwrap_or_else(|e| vec![e.to_string()])
    }

    #[test]
    fn unverified_connections_are_named_with_the_mode_to_set() {
        let cases: [(&str, &[&str]); 10] = [
            ("postgres://a@db.example/airflow", &["connection to db.example is not verified; set sslmode=verify-full"]),
            (
                "postgres://a@db/airflow?sslmode=require",
                &["connection to db is not verified (sslmode=require); set sslmode=verify-full"],
            ),
            (
                "postgres://a@db/airflow?sslmode=verify-ca&sslrootcert=/ca.pem",
                &[
                    "connection to db is not verified (sslmode=verify-ca checks the CA, not the host name); set sslmode=verify-full",
                ],
            ),
            ("postgres://a@db/airflow?sslmode=verify-full&sslrootcert=/ca.pem", &[]),
            ("postgresql://a@db/airflow?sslmode=disable", &[]),
            ("postgres://a@%2Fvar%2Frun%2Fpostgresql/airflow", &[]),
            ("mysql://root@maria:3306/airflow", &["connection to maria is not verified; set ssl-mode=VERIFY_IDENTITY"]),
            ("mariadb://root@maria/airflow?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem", &[]),
            ("mysql://root@maria/airflow?ssl-mode=DISABLED", &[]),
            (
                "mysql://root@maria/airflow?sslmode=required",
                &["connection to maria is not verified (ssl-mode=REQUIRED); set ssl-mode=VERIFY_IDENTITY"],
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(warnings(url), expected.to_vec(), "{url}");
        }
    }

    #[test]
    fn parameters_sqlx_does_not_read_are_removed_and_named() {
        let url = SecretUrl::new(
            "postgres://a@db/airflow?sslmode=verify-full&pass=hunter2&application_name=x&options[search_path]=s",
        );
        let parsed = parse(&url).unwrap();
        assert_eq!(parsed.ignored, vec!["pass"]);
        assert_eq!(parsed.warnings(), vec!["query parameter \"pass\" is not one the database driver reads: ignored"]);
        let url = SecretUrl::new("mysql://root@maria/airflow?password=hunter2&ssl-mode=DISABLED");
        let warnings = parse(&url).unwrap().warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("mysql://user:PASSWORD@host/db"), "{warnings:?}");
    }

    #[test]
    fn bad_urls_are_errors_without_their_secrets() {
        let error = parse(&SecretUrl::new("postgres://a:hunter2@db/x?sslmode=sometimes")).err().unwrap().to_string();
        assert!(error.starts_with("could not connect: bad database URL postgres://a:***@db/x"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let error = parse(&SecretUrl::new("redis://a:hunter2@db/0")).err().unwrap().to_string();
        assert!(error.contains("is not a postgres:// or mysql:// URL") && !error.contains("hunter2"), "{error}");
    }
}
