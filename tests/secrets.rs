//! No password in any output. Every source kind gets a password in every form it takes — a URL's
//! user part, a URL query parameter (`?password=`, `?pass=`), a librdkafka property inline or from
//! the environment, a misspelt property — each one distinct, against the real services (so that
//! connections and their errors are real too). Then every output stream is searched for each:
//! `validate`, `once` (table, JSON, text and JSON logs), `rbac`, the daemon's logs in text and
//! JSON, `/metrics`, and the Events it records.

mod support;

use std::time::Duration;

use support::apiserver::ApiServer;
use support::daemon::{Daemon, free_port, http_get, run};
use support::{eventually, kafka, redis};

/// One distinct secret per form, so that a leak names its path.
const SECRETS: [&str; 11] = [
    "redis-userinfo-s3cret",
    "rediss-userinfo-s3cret",
    "unix-pass-s3cret",
    "pg-userinfo-s3cret",
    "pg-query-s3cret",
    "pg-pass-s3cret",
    "mysql-query-s3cret",
    "mysql-userinfo-s3cret",
    "kafka-inline-s3cret",
    "kafka-env-s3cret",
    "kafka-typo-s3cret",
];

/// The sources of [`config`], in order.
const SOURCES: [&str; 9] = [
    "redis_user",
    "rediss_user",
    "unix_pass",
    "pg_user",
    "pg_query",
    "pg_pass",
    "mysql_query",
    "mysql_user",
    "kafka_sasl",
];

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Sources of every kind, each with a password in another form; one target uses them all.
fn config(port: u16, brokers: &str) -> String {
    let redis = host_port(&redis::url());
    let postgres =
        host_port(&std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://127.0.0.1:5432".into()));
    let mysql = host_port(&std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://127.0.0.1:3306".into()));
    let [redis_user, rediss_user, unix_pass, pg_user, pg_query, pg_pass, mysql_query, mysql_user, kafka_inline, ..] =
        SECRETS;
    let source = |name: &str, body: &str| format!("[sources.{name}]\n{body}\ntimeout = \"2s\"\n");
    let celery = |name: &str, url: &str| source(name, &format!("kind = \"celery\"\nurl = \"{url}\"\nqueues = [\"q\"]"));
    let airflow = |name: &str, url: &str| source(name, &format!("kind = \"airflow\"\nurl = \"{url}\""));
    let sources = [
        celery("redis_user", &format!("redis://worker:{redis_user}@{redis}/0")),
        celery("rediss_user", &format!("rediss://:{rediss_user}@{redis}/0")),
        celery("unix_pass", &format!("redis+unix:///nonexistent/redis.sock?db=14&pass={unix_pass}")),
        airflow("pg_user", &format!("postgres://airflow:{pg_user}@{postgres}/postgres")),
        airflow("pg_query", &format!("postgres://airflow@{postgres}/postgres?password={pg_query}")),
        airflow("pg_pass", &format!("postgres://airflow@{postgres}/postgres?sslmode=disable&pass={pg_pass}")),
        airflow("mysql_query", &format!("mysql://root@{mysql}/mysql?password={mysql_query}")),
        airflow("mysql_user", &format!("mysql://root:{mysql_user}@{mysql}/mysql")),
        source(
            "kafka_sasl",
            &format!(
                "kind = \"kafka\"\nbrokers = \"{brokers}\"\ngroup = \"g\"\ntopics = [\"t\"]\n\
                 librdkafka = {{ \"security.protocol\" = \"sasl_plaintext\", \"sasl.mechanisms\" = \"PLAIN\", \
                 \"sasl.username\" = \"u\", \"sasl.password\" = \"{kafka_inline}\" }}\n\
                 librdkafka_env = {{ \"ssl.key.password\" = \"TEST_KAFKA_KEY_PASSWORD\" }}"
            ),
        ),
    ];
    let triggers: Vec<String> = SOURCES.iter().map(|n| format!("{{ source = \"{n}\", per_replica = 1 }}")).collect();
    format!(
        "[daemon]\ninterval = \"1s\"\nlisten = \"127.0.0.1:{port}\"\n\n{}\n[[targets]]\nname = \"workers\"\nnamespace = \"data\"\ndeployment = \"worker\"\nmax_replicas = 5\ntriggers = [{}]\n\n# Every poll fails: a rescale to the fallback, and its Event.\n[targets.fallback]\nfailure_threshold = 1\nreplicas = 3\n",
        sources.join("\n"),
        triggers.join(", ")
    )
}

const ENV: [(&str, &str); 1] = [("TEST_KAFKA_KEY_PASSWORD", SECRETS[9])];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

fn printed(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_stream_shows_a_password() {
    let _ = redis::connect().await;
    let brokers = kafka::require();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config(free_port(), &brokers)).unwrap();
    let path = path.to_str().unwrap();

    let validate = run(&["validate", "--config", path], None, &ENV);
    assert!(validate.status.success(), "{}", printed(&validate));
    assert!(printed(&validate).contains("query parameter \"pass\" is not one the database driver reads"));
    assert_no_secret("validate", &printed(&validate));
    assert_no_secret("rbac", &printed(&run(&["rbac", "--config", path], None, &ENV)));

    for args in [&["--output", "json"][..], &["--output", "table"], &["--output", "json", "--log-json"]] {
        let out = run(&[&["once", "--config", path, "--dry-run"][..], args].concat(), None, &ENV);
        let text = printed(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("redis://worker:***@") && text.contains("?password=***"), "shown redacted: {text}");
        assert!(text.contains("redis+unix:///nonexistent/redis.sock?db=14&pass=***"), "{text}");
        assert_no_secret(&format!("once {args:?}"), &text);
    }

    // The daemon against a cluster (the test API server): logs in both formats, /metrics, Events.
    let api = ApiServer::start().await;
    api.add_deployment("data", "worker", 1);
    for json in [false, true] {
        let port = free_port();
        let args: &[&str] = if json { &["run", "--log-json"] } else { &["run"] };
        let daemon = Daemon::start(&config(port, &brokers), args, Some(&api.kubeconfig(dir.path())), &ENV);
        eventually(Duration::from_secs(30), "two cycles of failed polls", || {
            (daemon.log().matches("poll failed").count() >= 2 * SOURCES.len()).then_some(())
        })
        .await;
        let metrics = eventually(Duration::from_secs(10), "/metrics", || http_get(port, "/metrics")).await.1;
        assert!(metrics.contains("queue_autoscaler_source_errors_total"), "{metrics}");
        assert_no_secret("/metrics", &metrics);
        assert_no_secret(if json { "run --log-json" } else { "run" }, &daemon.log());
    }
    let events = api.events();
    assert!(!events.is_empty(), "the fallback's rescale records an Event");
    assert_no_secret("Events", &serde_json::to_string(&events).unwrap());
}

#[test]
fn a_misspelt_secret_property_is_refused_without_its_value() {
    // librdkafka refuses the property when the client is made, before it connects anywhere.
    let brokers = kafka::brokers();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let typo = SECRETS[10];
    let text = format!(
        "[sources.k]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ngroup = \"g\"\nlibrdkafka = {{ \"sasl.passwrod\" = \"{typo}\" }}\n\n[[targets]]\nname = \"w\"\ndeployment = \"w\"\nmax_replicas = 2\ntriggers = [{{ source = \"k\", per_replica = 1 }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap();
    for command in [&["once", "--config", path, "--dry-run"][..], &["run", "--config", path, "--dry-run", "--log-json"]]
    {
        let out = run(command, None, &[]);
        let text = printed(&out);
        assert!(!out.status.success(), "librdkafka refuses the property: {text}");
        assert!(text.contains("sasl.passwrod"), "names the property: {text}");
        assert_no_secret(&format!("{command:?}"), &text);
    }
}
