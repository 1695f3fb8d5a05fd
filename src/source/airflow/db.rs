//! One Airflow metadata database, PostgreSQL or MySQL/MariaDB (Airflow supports both), through
//! a small lazy pool shared by every source on the same URL.
//!
//! Every query runs in its own read-only transaction with a statement timeout scoped to that
//! transaction or statement (`SET LOCAL`, MariaDB's `SET STATEMENT … FOR`, MySQL's
//! `MAX_EXECUTION_TIME` hint): nothing is set on the session, so the pool is safe behind
//! PgBouncer in transaction mode, where a session `SET` would leak into Airflow's own connections.

mod options;

use std::time::Duration;

use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use tokio::sync::OnceCell;
// Every SQL text here is assembled from constants, column names of our own and placeholders;
// values from the config are always bound, never spliced in: so it is safe to assert.
use sqlx::AssertSqlSafe;

use crate::secret::SecretUrl;
use crate::source::SourceError;
use options::Options;

/// Connections per database: one poll query at a time per source, rarely two sources at once.
const MAX_CONNECTIONS: u32 = 2;

/// A pool on an Airflow metadata database.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    url: SecretUrl,
    timeout: Duration,
    /// MySQL or MariaDB: they bound statements differently. Asked once.
    mariadb: std::sync::Arc<OnceCell<bool>>,
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// How a backend writes bind parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1`, `$2`, … (PostgreSQL)
    Numbered,
    /// `?` (MySQL, MariaDB)
    Question,
}

impl Db {
    /// Whether a source holds this pool besides the shared map (every clone shares `mariadb`).
    pub(crate) fn in_use(&self) -> bool {
        std::sync::Arc::strong_count(&self.mariadb) > 1
    }

    /// A lazy pool: nothing connects until the first query. Logs what [`Db::warnings`] finds.
    pub fn open(url: &SecretUrl, timeout: Duration) -> Result<Db, SourceError> {
        let parsed = options::parse(url)?;
        for warning in parsed.warnings() {
            tracing::warn!(%url, "{warning}");
        }
        let pool = match parsed.options {
            Options::Postgres(options) => Pool::Postgres(
                pool_options::<sqlx::Postgres>(timeout).connect_lazy_with(options.application_name("queue-autoscaler")),
            ),
            Options::MySql(options) => Pool::MySql(pool_options::<sqlx::MySql>(timeout).connect_lazy_with(options)),
        };
        Ok(Db { pool, url: url.clone(), timeout, mariadb: Default::default() })
    }

    /// What an operator should know about `url` before it is used: a server that will not be
    /// verified ("connection to HOST is not verified; set sslmode=verify-full"), query parameters
    /// the driver ignores, or why it cannot be used at all.
    pub fn warnings(url: &SecretUrl) -> Vec<String> {
        options::parse(url).map_or_else(|error| vec![error.to_string()], |parsed| parsed.warnings())
    }

    pub fn placeholders(&self) -> Placeholders {
        match self.pool {
            Pool::Postgres(_) => Placeholders::Numbered,
            Pool::MySql(_) => Placeholders::Question,
        }
    }

    /// The columns of `table` in the connection's schema (empty if there is no such table).
    pub async fn columns(&self, table: &str) -> Result<Vec<String>, SourceError> {
        let sql = match self.pool {
            Pool::Postgres(_) => {
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1"
            }
            Pool::MySql(_) => {
                "SELECT CAST(column_name AS CHAR) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?"
            }
        };
        self.rows::<(String,)>(sql, &[table.to_owned()]).await.map(|rows| rows.into_iter().map(|(c,)| c).collect())
    }

    /// Runs one `SELECT` returning one `BIGINT`.
    pub async fn count(&self, sql: &str, binds: &[String]) -> Result<i64, SourceError> {
        let rows = self.rows::<(i64,)>(sql, binds).await?;
        rows.first().map(|(n,)| *n).ok_or_else(|| SourceError::Protocol("COUNT(*) returned no row".into()))
    }

    /// Runs one `SELECT` returning `(text, BIGINT)` rows.
    pub async fn counts(&self, sql: &str, binds: &[String]) -> Result<Vec<(String, i64)>, SourceError> {
        self.rows::<(String, i64)>(sql, binds).await
    }

    /// Runs one `SELECT` in a read-only transaction with the statement timeout, returning rows.
    pub async fn rows<R>(&self, sql: &str, binds: &[String]) -> Result<Vec<R>, SourceError>
    where
        R: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow>,
    {
        let result = match &self.pool {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin_with("BEGIN READ ONLY").await.map_err(|e| self.error(e))?;
                let timeout = format!("SET LOCAL statement_timeout = {}", self.timeout.as_millis());
                sqlx::query(AssertSqlSafe(timeout)).execute(&mut *tx).await.map_err(|e| self.error(e))?;
                let mut query = sqlx::query_as::<_, R>(AssertSqlSafe(sql));
                for bind in binds {
                    query = query.bind(bind);
                }
                let rows = query.fetch_all(&mut *tx).await;
                let _ = tx.rollback().await;
                rows
            }
            Pool::MySql(pool) => {
                let bounded = self.bounded_mysql(sql).await?;
                let mut tx = pool.begin_with("START TRANSACTION READ ONLY").await.map_err(|e| self.error(e))?;
                let mut query = sqlx::query_as::<_, R>(AssertSqlSafe(bounded));
                for bind in binds {
                    query = query.bind(bind);
                }
                let rows = query.fetch_all(&mut *tx).await;
                let _ = tx.rollback().await;
                rows
            }
        };
        result.map_err(|e| self.error(e))
    }

    /// The statement with a server-side time bound: MariaDB's `SET STATEMENT … FOR`, MySQL's hint.
    async fn bounded_mysql(&self, sql: &str) -> Result<String, SourceError> {
        let Pool::MySql(pool) = &self.pool else { return Ok(sql.to_owned()) };
        let mariadb = self
            .mariadb
            .get_or_try_init(|| async {
                let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(pool).await?;
                Ok::<_, sqlx::Error>(version.contains("MariaDB"))
            })
            .await
            .map_err(|e| self.error(e))?;
        let seconds = self.timeout.as_secs_f64();
        Ok(if *mariadb {
            format!("SET STATEMENT max_statement_time = {seconds} FOR {sql}")
        } else {
            sql.replacen("SELECT ", &format!("SELECT /*+ MAX_EXECUTION_TIME({}) */ ", self.timeout.as_millis()), 1)
        })
    }

    fn error(&self, error: sqlx::Error) -> SourceError {
        let message = self.url.scrub(&error.to_string());
        match error {
            sqlx::Error::Tls(_) | sqlx::Error::Io(_) if is_tls(&error) => SourceError::Connect(format!(
                "{message}: check sslrootcert (MySQL: ssl-ca), the CA that signed the server's certificate, and that the certificate names this host"
            )),
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => SourceError::Connect(message),
            sqlx::Error::Database(_) => SourceError::Query(message),
            _ => SourceError::Protocol(message),
        }
    }
}

/// Whether the connection failed in the TLS handshake: sqlx reports a refused certificate as an
/// I/O error around rustls' own.
fn is_tls(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    }
}

fn pool_options<DB: sqlx::Database>(timeout: Duration) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(MAX_CONNECTIONS)
        .min_connections(0)
        // Inside the poll's own bound, so that a database that is down is reported as such
        // (a connect error) rather than as the poll's timeout.
        .acquire_timeout(timeout.mul_f64(0.8))
        .idle_timeout(Duration::from_secs(300))
}
