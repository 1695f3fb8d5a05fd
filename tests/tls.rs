//! Verified TLS to the Airflow database, against a real PostgreSQL of the test's own: `initdb` into
//! a temporary directory with Debian's server binaries, `ssl = on` with a certificate for
//! localhost/127.0.0.1 signed by a CA made with `openssl`, password authentication over TLS only.
//! The right CA with `sslmode=verify-full` connects; a wrong CA, or a host name the certificate
//! does not name, is refused with a clear error; the password appears in no output. And the same
//! for MySQL's `ssl-mode=VERIFY_IDENTITY`, against a MariaDB of the test's own.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sqlx::{Connection, Executor};
use support::airflow::{Backend, Schema, task_instance_ddl};
use support::daemon::{free_port, run};
use support::tls::certificates;

const PASSWORD: &str = "tls-Pa55-w0rd";

/// A PostgreSQL server in a temporary directory; stopped when dropped.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// initdb, TLS on with `dir`'s certificates, start. Panics (never skips) with what went wrong.
    fn start() -> PrivatePostgres {
        let bin = server_binaries();
        let dir = tempfile::tempdir().expect("tempdir");
        certificates(dir.path());
        let server = PrivatePostgres { bin, port: free_port(), dir };
        let path = |name: &str| server.dir.path().join(name).to_string_lossy().into_owned();
        std::fs::write(server.dir.path().join("pwfile"), PASSWORD).expect("write pwfile");
        if running_as_root() {
            // initdb and postgres refuse to run as root: the data, key and log belong to postgres.
            let owned = Command::new("chown").args(["-R", "postgres:postgres", &path("")]).status();
            assert!(owned.is_ok_and(|s| s.success()), "chown -R postgres {}", path(""));
        }
        let data = path("data");
        let initdb = ["-D", &data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile", &path("pwfile"), "--no-sync"];
        server.postgres_user("initdb", &initdb);
        let config = format!(
            "listen_addresses = '127.0.0.1,127.0.0.2'\nport = {}\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            server.port,
            path(""),
            path("server.pem"),
            path("server.key"),
        );
        append(&server.dir.path().join("data/postgresql.conf"), &config);
        // Password authentication, over TLS only: a plaintext connection is refused.
        std::fs::write(server.dir.path().join("data/pg_hba.conf"), "hostssl all all 127.0.0.0/8 scram-sha-256\n")
            .expect("write pg_hba.conf");
        server.postgres_user("pg_ctl", &["-D", &data, "-l", &path("log"), "-w", "-t", "30", "start"]);
        server
    }

    /// One of the server's binaries, run as the postgres user when the test runs as root.
    fn command(&self, binary: &str) -> Command {
        let program = self.bin.join(binary);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Runs one of the server's binaries; panics with its output and the server's log on failure.
    fn postgres_user(&self, binary: &str, args: &[&str]) -> Output {
        let out = self.command(binary).args(args).output().unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "the test's PostgreSQL: {binary} {args:?} failed:\n{}{}\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").to_string_lossy().into_owned()
    }

    /// A URL to the `postgres` database on `host`, with `query`.
    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().into_owned();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb` (Debian's layout).
fn server_binaries() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    found.sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()));
    found.pop().expect(
        "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (initdb, pg_ctl): apt-get install postgresql",
    )
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open postgresql.conf");
    file.write_all(text.as_bytes()).expect("append to postgresql.conf");
}

/// The rows the TLS tests put in `task_instance` (Airflow 2.10's, as the model defines it).
const TASKS: &str = "INSERT INTO task_instance (dag_id, task_id, run_id, pool, state, queue) VALUES \
    ('etl', 'a', 'r', 'default_pool', 'queued', 'default'), ('etl', 'b', 'r', 'default_pool', '{b}', 'default'), \
    ('etl', 'c', 'r', 'default_pool', '{c}', 'default')";

/// Creates Airflow's `task_instance` with three queued tasks.
async fn create_tasks(server: &PrivatePostgres) {
    let url = server.url("localhost", "sslmode=require");
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect to the test's PostgreSQL");
    let ddl = task_instance_ddl(Backend::Postgres, Schema::V2_10);
    let rows = TASKS.replace("{b}", "queued").replace("{c}", "queued");
    for sql in ddl.split(";\n").map(str::trim).filter(|s| !s.is_empty()).chain([rows.as_str()]) {
        connection.execute(sqlx::AssertSqlSafe(sql)).await.expect(sql);
    }
}

fn config_file(dir: &Path, url: &str) -> String {
    let text = format!(
        "[sources.db]\nkind = \"airflow\"\nurl = \"{url}\"\n\n[[targets]]\nname = \"w\"\ndeployment = \"w\"\nmax_replicas = 10\ntriggers = [{{ source = \"db\", per_replica = 1 }}]\n"
    );
    let path = dir.join(format!("config-{}.toml", support::unique("tls")));
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

/// `once --dry-run --output json` on a config with `url`: (the trigger's report, everything printed).
fn once(url: &str) -> (Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["once", "--config", &config_file(dir.path(), url), "--dry-run", "--output", "json"], None, &[]);
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{printed}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {printed}"));
    assert!(!printed.contains(PASSWORD), "the password was printed:\n{printed}");
    (report[0]["triggers"][0].clone(), printed)
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_refuses_a_wrong_one() {
    let server = PrivatePostgres::start();
    create_tasks(&server).await;
    let ca = server.ca();

    let (trigger, printed) = once(&server.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert_eq!(trigger["value"], 3.0, "{printed}");
    assert!(!printed.contains("is not verified"), "no warning for a verified connection:\n{printed}");
    // The certificate names 127.0.0.1 too.
    let (trigger, printed) = once(&server.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert_eq!(trigger["value"], 3.0, "{printed}");

    // Another CA: refused, and the error says it is the certificate.
    let other = tempfile::tempdir().expect("tempdir");
    certificates(other.path());
    let wrong = other.path().join("ca.pem").to_string_lossy().into_owned();
    let (trigger, printed) = once(&server.url("localhost", &format!("sslmode=verify-full&sslrootcert={wrong}")));
    assert_eq!(trigger["value"], Value::Null, "{printed}");
    let error = trigger["error"].as_str().expect("an error");
    assert!(error.contains("could not connect") && error.contains("certificate"), "{error}");
    assert!(error.contains("sslrootcert"), "says what to check: {error}");

    // 127.0.0.2 is the same server, but not a name in its certificate: verify-ca accepts it,
    // verify-full does not.
    let (trigger, printed) = once(&server.url("127.0.0.2", &format!("sslmode=verify-ca&sslrootcert={ca}")));
    assert_eq!(trigger["value"], 3.0, "{printed}");
    assert!(printed.contains("connection to 127.0.0.2 is not verified (sslmode=verify-ca"), "{printed}");
    let (trigger, printed) = once(&server.url("127.0.0.2", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert!(trigger["error"].as_str().is_some_and(|e| e.contains("certificate")), "{printed}");

    // No TLS mode: sqlx would connect to anyone who answers; the daemon says so at start.
    let (trigger, printed) = once(&server.url("localhost", "application_name=x"));
    assert_eq!(trigger["value"], 3.0, "{printed}");
    assert!(printed.contains("connection to localhost is not verified; set sslmode=verify-full"), "{printed}");
}

#[tokio::test]
async fn the_password_given_as_a_query_parameter_works_and_is_never_printed() {
    let server = PrivatePostgres::start();
    create_tasks(&server).await;
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?password={PASSWORD}&sslmode=verify-full&sslrootcert={}",
        server.port,
        server.ca()
    );
    let (trigger, printed) = once(&url);
    assert_eq!(trigger["value"], 3.0, "{printed}");
    // A wrong password: the error names the failure, not the password tried.
    let (trigger, printed) = once(&url.replace(PASSWORD, &format!("{PASSWORD}-wrong")));
    let error = trigger["error"].as_str().expect("an error");
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(!printed.contains("-wrong"), "{printed}");
}

/// A MariaDB server in a temporary directory, TLS on with the test CA's certificate, grant tables
/// off (anyone may connect: what is tested is the client's verification); killed when dropped.
struct PrivateMariaDb {
    dir: tempfile::TempDir,
    server: std::process::Child,
    port: u16,
}

impl PrivateMariaDb {
    fn start() -> PrivateMariaDb {
        let dir = tempfile::tempdir().expect("tempdir");
        certificates(dir.path());
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        // As root, both switch to the mysql user (which owns the files); otherwise they run as is.
        let user: &[&str] = if running_as_root() { &["--user=mysql"] } else { &[] };
        if running_as_root() {
            let owned = Command::new("chown").args(["-R", "mysql:mysql", &path("")]).status();
            assert!(owned.is_ok_and(|s| s.success()), "chown -R mysql {}", path(""));
        }
        let datadir = format!("--datadir={}", path("data"));
        let install = Command::new("mariadb-install-db")
            .args(["--no-defaults", &datadir, "--skip-test-db"])
            .args(user)
            .output()
            .expect("mariadb-install-db (Debian package mariadb-server) must be installed");
        assert!(install.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&install.stderr));
        let port = free_port();
        let server = Command::new("mariadbd")
            .args(["--no-defaults", &datadir, &format!("--port={port}")])
            .args(user)
            .args(["--bind-address=127.0.0.1", &format!("--socket={}", path("sock")), "--skip-grant-tables"])
            .args([format!("--ssl-cert={}", path("server.pem")), format!("--ssl-key={}", path("server.key"))])
            .arg(format!("--log-error={}", path("error.log")))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mariadbd (Debian package mariadb-server) must be installed");
        let mut db = PrivateMariaDb { dir, server, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return db;
            }
            if let Ok(Some(status)) = db.server.try_wait() {
                let log = std::fs::read_to_string(db.dir.path().join("error.log")).unwrap_or_default();
                panic!("the test's MariaDB exited ({status}):\n{log}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the test's MariaDB did not listen on {port} within 10 s");
    }

    fn url(&self, query: &str) -> String {
        format!("mysql://root@localhost:{}/airflow?{query}", self.port)
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[tokio::test]
async fn verify_identity_connects_to_mariadb_with_the_right_ca_and_refuses_a_wrong_one() {
    let server = PrivateMariaDb::start();
    let url = format!("mysql://root@127.0.0.1:{}/mysql?ssl-mode=REQUIRED", server.port);
    let mut connection = sqlx::MySqlConnection::connect(&url).await.expect("connect to the test's MariaDB");
    // Two in the queued + running count: a, queued, and b, running; c has succeeded.
    let rows = TASKS.replace("{b}", "running").replace("{c}", "success");
    let ddl = task_instance_ddl(Backend::MariaDb, Schema::V2_10);
    let statements = ddl.split(";\n").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let setup =
        ["CREATE DATABASE airflow".to_owned(), "USE airflow".to_owned()].into_iter().chain(statements).chain([rows]);
    for sql in setup {
        connection.execute(sqlx::AssertSqlSafe(sql.as_str())).await.expect("set up task_instance");
    }
    let ca = server.dir.path().join("ca.pem").to_string_lossy().into_owned();

    let (trigger, printed) = once(&server.url(&format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}")));
    assert_eq!(trigger["value"], 2.0, "{printed}");
    assert!(!printed.contains("is not verified"), "{printed}");

    let other = tempfile::tempdir().expect("tempdir");
    certificates(other.path());
    let wrong = other.path().join("ca.pem").to_string_lossy().into_owned();
    let (trigger, printed) = once(&server.url(&format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={wrong}")));
    let error = trigger["error"].as_str().unwrap_or_else(|| panic!("an error: {printed}"));
    assert!(error.contains("certificate") && error.contains("ssl-ca"), "{error}");

    let (trigger, printed) = once(&server.url(""));
    assert_eq!(trigger["value"], 2.0, "{printed}");
    assert!(printed.contains("connection to localhost is not verified; set ssl-mode=VERIFY_IDENTITY"), "{printed}");
}
