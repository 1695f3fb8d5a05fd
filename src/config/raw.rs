//! The TOML shapes (serde) and their conversion into validated values.

mod fields;
mod objective;
mod simulation;
mod spot;
mod target;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::env::Override;
use super::{Config, Daemon, LeaderElection, Problem};
use crate::secret::SecretUrl;
use crate::source::{Kind, Settings, SourceSpec, airflow, celery, kafka};
use fields::{HumanDuration, check_duration};

#[derive(Deserialize, Default)]
struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    sources: BTreeMap<String, config::Value>,
    #[serde(default)]
    targets: Vec<target::RawTarget>,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawDaemon {
    interval: HumanDuration,
    listen: String,
    field_manager: String,
    dry_run: bool,
    kube_timeout: HumanDuration,
    config_check_interval: HumanDuration,
    leader_election: RawLeaderElection,
    admin_details: bool,
}

impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon {
            interval: HumanDuration(Duration::from_secs(15)),
            listen: "0.0.0.0:9090".to_owned(),
            field_manager: "queue-autoscaler".to_owned(),
            dry_run: false,
            kube_timeout: HumanDuration(Duration::from_secs(10)),
            config_check_interval: HumanDuration(Duration::from_secs(5)),
            leader_election: RawLeaderElection::default(),
            admin_details: false,
        }
    }
}

/// `[daemon.leader_election]`, with client-go's defaults.
#[derive(Deserialize)]
#[serde(default)]
struct RawLeaderElection {
    enabled: bool,
    lease_name: String,
    namespace: Option<String>,
    lease_duration: HumanDuration,
    renew_deadline: HumanDuration,
    retry_period: HumanDuration,
}

impl Default for RawLeaderElection {
    fn default() -> Self {
        RawLeaderElection {
            enabled: false,
            lease_name: "queue-autoscaler".to_owned(),
            namespace: None,
            lease_duration: HumanDuration(Duration::from_secs(15)),
            renew_deadline: HumanDuration(Duration::from_secs(10)),
            retry_period: HumanDuration(Duration::from_secs(2)),
        }
    }
}

/// Default bound on one source poll.
const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(5);
const SECOND: Duration = Duration::from_secs(1);
/// The longest poll or check interval, and the longest lease timing: an hour.
pub(super) const LONGEST_INTERVAL: Duration = Duration::from_secs(3600);
/// The longest bound on one request or poll: five minutes.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Parses and validates; on failure, every problem found.
pub(super) fn parse(text: &str, overrides: &[Override], env: &HashMap<String, String>) -> Result<Config, Vec<Problem>> {
    let merged = merge(text, overrides)?;
    let mut problems = Vec::new();
    let Some(raw) = deserialize::<RawConfig>(merged, "", &mut problems) else {
        return Err(problems);
    };
    let daemon = daemon(raw.daemon, env, &mut problems);
    let sources: BTreeMap<String, SourceSpec> = raw
        .sources
        .into_iter()
        .filter_map(|(name, value)| source(&name, value, env, &mut problems).map(|spec| (name, spec)))
        .collect();
    if raw.targets.is_empty() {
        // A daemon without targets would start, do nothing and exit; a reload to it would stop one.
        problems.push(Problem::new("targets", "needs at least one [[targets]] entry"));
    }
    let targets = target::targets(raw.targets, &daemon, &sources, &mut problems);
    if problems.is_empty() { Ok(Config { daemon, sources, targets }) } else { Err(problems) }
}

/// The file with the environment's overrides applied, by the `config` crate.
fn merge(text: &str, overrides: &[Override]) -> Result<config::Config, Vec<Problem>> {
    let mut builder = config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml));
    for o in overrides {
        builder = builder
            .set_override(o.path.as_str(), o.value.clone())
            .map_err(|e| vec![Problem::new(o.path.clone(), format!("bad environment override: {e}"))])?;
    }
    builder.build().map_err(|e| vec![syntax_problem(&e)])
}

/// toml's multi-line report ("TOML parse error at line 3, column 9 | … ^ message") as one problem.
fn syntax_problem(error: &config::ConfigError) -> Problem {
    let text = match error {
        config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    let line = text
        .split("at line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    let message = text.lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('|')).unwrap_or("");
    Problem { path: String::new(), line, message: format!("invalid TOML: {message}") }
}

/// Deserializes `T`, reporting unknown keys and the first type error with their key paths.
fn deserialize<T: DeserializeOwned>(
    value: impl for<'de> serde::Deserializer<'de, Error = config::ConfigError>,
    prefix: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut track = serde_path_to_error::Track::new();
    let mut unknown = Vec::new();
    let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
    let result = serde_ignored::deserialize(tracked, |path| unknown.push(ignored_path(&path)));
    problems.extend(unknown.into_iter().map(|path| Problem::new(join(prefix, &path), "unknown key")));
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let path = match track.path().to_string() {
                p if p == "." => String::new(),
                p => p,
            };
            problems.push(type_problem(join(prefix, &path), &error.to_string()));
            None
        }
    }
}

/// Rewrites the `config` crate's messages to name the key once, in our path syntax: it says
/// `missing configuration field "targets[0]max_replicas"` at the parent's path, and appends
/// ``for key `…` `` to type errors.
fn type_problem(path: String, message: &str) -> Problem {
    if let Some(field) = message.strip_prefix("missing configuration field \"").and_then(|m| m.strip_suffix('"')) {
        let key = field.rsplit(['.', ']']).next().unwrap_or(field);
        return Problem::new(join(&path, key), "required key is missing");
    }
    let message = message.split(" for key `").next().unwrap_or(message);
    Problem::new(path, message.to_owned())
}

fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => join(&ignored_path(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if key.starts_with('[') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{key}"),
    }
}

fn daemon(raw: RawDaemon, env: &HashMap<String, String>, problems: &mut Vec<Problem>) -> Daemon {
    let listen = raw.listen.parse().unwrap_or_else(|_| {
        problems.push(Problem::new(
            "daemon.listen",
            format!("{:?} is not an address such as \"0.0.0.0:9090\"", raw.listen),
        ));
        ([0, 0, 0, 0], 9090).into()
    });
    check_duration(raw.interval.0, SECOND, LONGEST_INTERVAL, "daemon.interval", problems);
    check_duration(raw.kube_timeout.0, Duration::from_millis(1), LONGEST_TIMEOUT, "daemon.kube_timeout", problems);
    let manager = &raw.field_manager;
    if manager.is_empty() || manager.len() > 128 || manager.chars().any(|c| c.is_control()) {
        problems.push(Problem::new("daemon.field_manager", "must be 1 to 128 printable characters"));
    }
    check_duration(raw.config_check_interval.0, SECOND, LONGEST_INTERVAL, "daemon.config_check_interval", problems);
    let leader_election = leader_election(raw.leader_election, env, problems);
    if let Some(election) = leader_election.as_ref().filter(|e| raw.kube_timeout.0 >= e.lease_duration) {
        // The leader starts a write only if it would land, at its slowest, before the lease
        // could expire for the others (k8s::lease::Leadership): with this bound it never would.
        problems.push(Problem::new(
            "daemon.kube_timeout",
            format!(
                "must be shorter than daemon.leader_election.lease_duration ({}): a write may land kube_timeout after \
                 it starts, so the leader would never write; lower kube_timeout or raise lease_duration",
                humantime::format_duration(election.lease_duration)
            ),
        ));
    }
    Daemon {
        interval: raw.interval.0,
        listen,
        field_manager: raw.field_manager,
        dry_run: raw.dry_run,
        kube_timeout: raw.kube_timeout.0,
        config_check_interval: raw.config_check_interval.0,
        leader_election,
        admin_details: raw.admin_details,
    }
}

/// client-go's validation: lease duration > renew deadline > 1.2 × retry period > 0.
fn leader_election(
    raw: RawLeaderElection,
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<LeaderElection> {
    if !raw.enabled {
        return None;
    }
    let path = "daemon.leader_election";
    let (duration, deadline, retry) = (raw.lease_duration.0, raw.renew_deadline.0, raw.retry_period.0);
    if duration <= deadline {
        problems.push(Problem::new(format!("{path}.lease_duration"), "must be longer than renew_deadline"));
    }
    if deadline.as_secs_f64() <= 1.2 * retry.as_secs_f64() {
        problems.push(Problem::new(format!("{path}.renew_deadline"), "must be longer than 1.2 × retry_period"));
    }
    // The Lease stores whole seconds (leaseDurationSeconds): under one second it would say 0.
    check_duration(duration, SECOND, LONGEST_INTERVAL, &format!("{path}.lease_duration"), problems);
    check_duration(deadline, Duration::ZERO, LONGEST_INTERVAL, &format!("{path}.renew_deadline"), problems);
    check_duration(retry, Duration::from_millis(1), LONGEST_INTERVAL, &format!("{path}.retry_period"), problems);
    if raw.lease_name.is_empty() {
        problems.push(Problem::new(format!("{path}.lease_name"), "must not be empty"));
    }
    // In a pod, the downward API gives its namespace and name (deploy/ sets both).
    let namespace = raw.namespace.or_else(|| env.get("POD_NAMESPACE").cloned()).unwrap_or_else(|| "default".to_owned());
    Some(LeaderElection {
        lease_name: raw.lease_name,
        namespace,
        lease_duration: duration,
        renew_deadline: deadline,
        retry_period: retry,
    })
}

/// One `[sources.NAME]` table: the keys every kind shares, then the kind's own.
fn source(
    name: &str,
    value: config::Value,
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<SourceSpec> {
    let path = format!("sources.{name}");
    let Ok(mut table) = value.into_table() else {
        problems.push(Problem::new(path, "must be a table with a `kind`"));
        return None;
    };
    let shared = SharedKeys::take(&mut table, &path, env, problems)?;
    // The keys the file sets (a Celery source refuses Redis-only keys on RabbitMQ by name).
    let written: Vec<String> = table.keys().cloned().collect();
    let rest = config::Value::new(None, table);
    let settings = match shared.kind {
        Kind::Celery => {
            let mut settings: celery::CelerySettings = deserialize(rest, &path, problems)?;
            report(&path, settings.resolve_env(env).into_iter().collect(), problems);
            report(&path, settings.problems(shared.url.as_ref(), &written), problems);
            Settings::Celery(settings)
        }
        Kind::Airflow => {
            let settings: airflow::AirflowSettings = deserialize(rest, &path, problems)?;
            report(&path, settings.problems(), problems);
            Settings::Airflow(settings)
        }
        Kind::Kafka => {
            let mut settings: kafka::KafkaSettings = deserialize(rest, &path, problems)?;
            report(&path, settings.problems(), problems);
            for variable in settings.resolve_env(env) {
                problems.push(Problem::new(
                    join(&path, "librdkafka_env"),
                    format!("environment variable {variable} is not set"),
                ));
            }
            if shared.url_given {
                problems.push(Problem::new(join(&path, "url"), "a kafka source takes `brokers`, not `url`"));
            }
            return Some(SourceSpec { url: None, timeout: shared.timeout, settings: Settings::Kafka(settings) });
        }
    };
    if !shared.url_given {
        let kind = shared.kind.as_str();
        problems.push(Problem::new(join(&path, "url"), format!("this {kind} source needs `url` or `url_env`")));
    }
    Some(SourceSpec { url: shared.url, timeout: shared.timeout, settings })
}

fn report(path: &str, found: Vec<(&'static str, String)>, problems: &mut Vec<Problem>) {
    problems.extend(found.into_iter().map(|(key, message)| Problem::new(join(path, key), message)));
}

/// `kind`, `url`/`url_env` and `timeout`: the keys every source kind shares.
struct SharedKeys {
    kind: Kind,
    url: Option<SecretUrl>,
    /// Whether `url` or `url_env` was written (the URL may still be missing, and reported).
    url_given: bool,
    timeout: Duration,
}

impl SharedKeys {
    fn take(
        table: &mut config::Map<String, config::Value>,
        path: &str,
        env: &HashMap<String, String>,
        problems: &mut Vec<Problem>,
    ) -> Option<SharedKeys> {
        let mut string = |key: &str| -> Option<String> {
            let value = table.remove(key)?;
            value.into_string().map_err(|_| problems.push(Problem::new(join(path, key), "must be a string"))).ok()
        };
        let kind_name = string("kind");
        let url = string("url");
        let url_env = string("url_env");
        let timeout = string("timeout");
        let kinds = Kind::ALL.map(Kind::as_str).join(", ");
        let Some(kind_name) = kind_name else {
            problems.push(Problem::new(join(path, "kind"), format!("required key is missing (one of: {kinds})")));
            return None;
        };
        let Some(kind) = Kind::parse(&kind_name) else {
            problems.push(Problem::new(join(path, "kind"), format!("unknown kind {kind_name:?} (one of: {kinds})")));
            return None;
        };
        let url_given = url.is_some() || url_env.is_some();
        let url = resolve_url(url, url_env, path, env, problems);
        let timeout = match timeout.map(|t| fields::parse_duration(&t)) {
            None => DEFAULT_SOURCE_TIMEOUT,
            // Whole milliseconds at least: a database's statement timeout is set in them (0 = none).
            Some(Ok(t)) => {
                check_duration(t, Duration::from_millis(1), LONGEST_TIMEOUT, &join(path, "timeout"), problems);
                t
            }
            Some(Err(message)) => {
                problems.push(Problem::new(join(path, "timeout"), message));
                DEFAULT_SOURCE_TIMEOUT
            }
        };
        Some(SharedKeys { kind, url, url_given, timeout })
    }
}

/// A URL is given inline (`url`) or, to keep secrets out of the file, by variable (`url_env`).
fn resolve_url(
    url: Option<String>,
    url_env: Option<String>,
    path: &str,
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<SecretUrl> {
    match (url, url_env) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(join(path, "url_env"), "give either `url` or `url_env`, not both"));
            None
        }
        (Some(url), None) => Some(SecretUrl::new(url)),
        (None, Some(var)) => match env.get(&var) {
            Some(url) if !url.is_empty() => Some(SecretUrl::new(url.clone())),
            _ => {
                problems.push(Problem::new(join(path, "url_env"), format!("environment variable {var} is not set")));
                None
            }
        },
        (None, None) => None,
    }
}
