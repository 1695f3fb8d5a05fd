//! Airflow metadata databases on the machine's real PostgreSQL and MariaDB: a fresh database per
//! test, with `task_instance` created as each Airflow version defines it
//! (apache/airflow `airflow/models/taskinstance.py`, class `TaskInstance`).

use sqlx::{AssertSqlSafe, Connection, Executor};

/// A task instance to insert: (state, queue, executor, hostname).
pub type TaskRow = (Option<&'static str>, Option<&'static str>, Option<&'static str>, Option<&'static str>);

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MariaDb,
}

/// Which Airflow schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// 2.9: no `executor` column yet.
    V2_9,
    /// 2.10: `executor` added.
    V2_10,
    /// 3.x: UUID primary key, no `job_id`, span/version columns.
    V3,
}

fn admin_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        Backend::MariaDb => {
            std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".to_owned())
        }
    }
}

/// A database of its own on the backend; dropped by [`TestDb::drop_database`].
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    name: String,
}

impl TestDb {
    /// Creates an empty database; fails the test (never skips) when the server is unreachable.
    pub async fn create(backend: Backend, prefix: &str) -> TestDb {
        let name = super::unique(prefix).replace('-', "_");
        let admin = admin_url(backend);
        execute(backend, &admin, &format!("CREATE DATABASE {name}")).await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        TestDb { backend, url: format!("{base}/{name}"), name }
    }

    pub async fn drop_database(self) {
        let sql = match self.backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Backend::MariaDb => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        execute(self.backend, &admin_url(self.backend), &sql).await;
    }

    /// Runs statements (separated by `;` at line ends) on this database.
    pub async fn execute(&self, sql: &str) {
        execute(self.backend, &self.url, sql).await;
    }

    /// Creates `task_instance` as the Airflow version defines it, with its indexes.
    pub async fn create_task_instance(&self, schema: Schema) {
        self.execute(&task_instance_ddl(self.backend, schema)).await;
    }

    /// Inserts task instances `task_0`, `task_1`, …. `executor` is left out on 2.9.
    pub async fn insert(&self, schema: Schema, rows: &[TaskRow]) {
        self.insert_from(schema, 0, rows).await;
    }

    /// Inserts task instances named from `task_{first}` on.
    pub async fn insert_from(&self, schema: Schema, first: usize, rows: &[TaskRow]) {
        let quote = |v: Option<&str>| v.map_or("NULL".to_owned(), |v| format!("'{v}'"));
        let mut statements = Vec::new();
        for (i, (state, queue, executor, hostname)) in rows.iter().enumerate().map(|(i, r)| (i + first, r)) {
            let mut columns = vec!["dag_id", "task_id", "run_id", "map_index", "pool", "state", "queue", "hostname"];
            let mut values = vec![
                quote(Some("etl")),
                format!("'task_{i}'"),
                quote(Some("run_1")),
                "-1".into(),
                quote(Some("default_pool")),
            ];
            values.extend([quote(*state), quote(*queue), quote(*hostname)]);
            if schema != Schema::V2_9 {
                columns.push("executor");
                values.push(quote(*executor));
            }
            if schema == Schema::V3 {
                columns.extend(["id", "span_status", "dag_version_id"]);
                values.extend([format!("'{}'", uuid_like(i)), "'not_started'".into(), format!("'{}'", uuid_like(0))]);
            }
            statements.push(format!(
                "INSERT INTO task_instance ({}) VALUES ({})",
                columns.join(", "),
                values.join(", ")
            ));
        }
        self.execute(&statements.join(";\n")).await;
    }
}

impl TestDb {
    /// Fills a PostgreSQL `task_instance` (2.10 schema) with `rows` task instances shaped like a
    /// busy installation's: 0.2 % queued, 0.2 % running, 0.2 % scheduled, 2.4 % failed, the rest
    /// succeeded; one in seven on the `kubernetes` queue. Then `VACUUM ANALYZE`.
    pub async fn fill_like_production(&self, rows: u64) {
        assert_eq!(self.backend, Backend::Postgres, "generate_series is PostgreSQL's");
        self.execute(&format!(
            "INSERT INTO task_instance (dag_id, task_id, run_id, map_index, pool, state, queue, hostname, priority_weight, try_number)
SELECT 'dag_' || (g % 200), 'task_' || (g % 50), 'run_' || (g / 10000), g, 'default_pool',
  CASE WHEN g % 1000 < 2 THEN 'queued' WHEN g % 1000 < 4 THEN 'running' WHEN g % 1000 < 6 THEN 'scheduled'
       WHEN g % 1000 < 30 THEN 'failed' ELSE 'success' END,
  CASE WHEN g % 7 = 0 THEN 'kubernetes' ELSE 'default' END, 'worker-' || (g % 20), 1, 1
FROM generate_series(1, {rows}) g;
VACUUM ANALYZE task_instance"
        ))
        .await;
    }

    /// PostgreSQL's plan for `sql` with `binds` (text parameters), as a prepared statement is
    /// planned: one line per plan node.
    pub async fn explain(&self, sql: &str, binds: &[String]) -> Vec<String> {
        let mut connection = sqlx::PgConnection::connect(&self.url).await.expect("connect");
        let types = vec!["text"; binds.len()].join(", ");
        let statement = if binds.is_empty() { String::new() } else { format!("({types})") };
        connection.execute(AssertSqlSafe(format!("PREPARE planned{statement} AS {sql}"))).await.expect("prepare");
        let args: Vec<String> = binds.iter().map(|b| format!("'{}'", b.replace('\'', "''"))).collect();
        let arguments = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
        let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(format!("EXPLAIN EXECUTE planned{arguments}")))
            .fetch_all(&mut connection)
            .await
            .expect("explain");
        rows.into_iter().map(|(line,)| line).collect()
    }
}

/// A UUID-shaped string (the tests need distinct ids, not random ones).
fn uuid_like(i: usize) -> String {
    format!("0192f0c0-0000-7000-8000-{i:012}")
}

async fn execute(backend: Backend, url: &str, sql: &str) {
    let statements = sql.split(";\n").map(str::trim).filter(|s| !s.is_empty());
    match backend {
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {url} ({e}). Start it with \
                     `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or set TEST_POSTGRES_URL."
                )
            });
            for statement in statements {
                connection.execute(AssertSqlSafe(statement)).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        }
        Backend::MariaDb => {
            let mut connection = sqlx::MySqlConnection::connect(url).await.unwrap_or_else(|e| {
                panic!(
                    "MariaDB is not reachable at {url} ({e}). Start it with \
                     `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, or set TEST_MYSQL_URL."
                )
            });
            for statement in statements {
                connection.execute(AssertSqlSafe(statement)).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        }
    }
}

/// `task_instance` DDL for a backend and version: columns, types, primary key and indexes as the
/// Airflow models define them.
pub fn task_instance_ddl(backend: Backend, schema: Schema) -> String {
    let pg = backend == Backend::Postgres;
    let (ts, blob, json) =
        if pg { ("TIMESTAMP WITH TIME ZONE", "BYTEA", "JSON") } else { ("TIMESTAMP(6) NULL", "BLOB", "JSON") };
    let id = if pg { "VARCHAR(250)" } else { "VARCHAR(250) COLLATE utf8mb3_bin" };
    let uuid = if pg { "UUID" } else { "CHAR(36)" };
    let mut columns = vec![
        format!("task_id {id} NOT NULL"),
        format!("dag_id {id} NOT NULL"),
        format!("run_id {id} NOT NULL"),
        "map_index INTEGER NOT NULL DEFAULT -1".to_owned(),
        format!("start_date {ts}"),
        format!("end_date {ts}"),
        "duration FLOAT".to_owned(),
        "state VARCHAR(20)".to_owned(),
        "try_number INTEGER".to_owned(),
        "max_tries INTEGER DEFAULT -1".to_owned(),
        "hostname VARCHAR(1000)".to_owned(),
        "unixname VARCHAR(1000)".to_owned(),
        "pool VARCHAR(256) NOT NULL".to_owned(),
        "pool_slots INTEGER NOT NULL DEFAULT 1".to_owned(),
        "queue VARCHAR(256)".to_owned(),
        "priority_weight INTEGER".to_owned(),
        "operator VARCHAR(1000)".to_owned(),
        "custom_operator_name VARCHAR(1000)".to_owned(),
        format!("queued_dttm {ts}"),
        "queued_by_job_id INTEGER".to_owned(),
        "pid INTEGER".to_owned(),
        format!("executor_config {blob}"),
        format!("updated_at {ts}"),
        format!("rendered_map_index {id}"),
        format!("external_executor_id {id}"),
        "trigger_id INTEGER".to_owned(),
        "next_method VARCHAR(1000)".to_owned(),
        format!("next_kwargs {json}"),
        "task_display_name VARCHAR(2000)".to_owned(),
    ];
    if schema != Schema::V2_9 {
        columns.push("executor VARCHAR(1000)".to_owned());
    }
    let mut indexes = vec![
        "CREATE INDEX ti_dag_state ON task_instance (dag_id, state)",
        "CREATE INDEX ti_dag_run ON task_instance (dag_id, run_id)",
        "CREATE INDEX ti_state ON task_instance (state)",
        "CREATE INDEX ti_state_lkp ON task_instance (dag_id, task_id, run_id, state)",
        "CREATE INDEX ti_pool ON task_instance (pool, state, priority_weight)",
        "CREATE INDEX ti_trigger_id ON task_instance (trigger_id)",
    ];
    match schema {
        Schema::V2_9 | Schema::V2_10 => {
            columns.push("job_id INTEGER".to_owned());
            columns.push(if pg {
                "trigger_timeout TIMESTAMP".to_owned()
            } else {
                "trigger_timeout DATETIME".to_owned()
            });
            columns.push("CONSTRAINT task_instance_pkey PRIMARY KEY (dag_id, task_id, run_id, map_index)".to_owned());
            indexes.push("CREATE INDEX ti_job_id ON task_instance (job_id)");
        }
        Schema::V3 => {
            columns.insert(0, format!("id {uuid} NOT NULL"));
            columns.push(format!("trigger_timeout {ts}"));
            columns.push(format!("scheduled_dttm {ts}"));
            columns.push(format!("last_heartbeat_at {ts}"));
            columns.push(format!("context_carrier {json}"));
            columns.push("span_status VARCHAR(250) NOT NULL".to_owned());
            columns.push(format!("dag_version_id {uuid} NOT NULL"));
            columns.push("CONSTRAINT task_instance_pkey PRIMARY KEY (id)".to_owned());
            columns
                .push("CONSTRAINT task_instance_composite_key UNIQUE (dag_id, task_id, run_id, map_index)".to_owned());
            indexes.push("CREATE INDEX ti_heartbeat ON task_instance (last_heartbeat_at)");
        }
    }
    format!("CREATE TABLE task_instance (\n  {}\n);\n{};\n", columns.join(",\n  "), indexes.join(";\n"))
}
