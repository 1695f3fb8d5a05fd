//! Airflow's metadata database: how many task instances need Celery worker slots
//! (apache/airflow `airflow/models/taskinstance.py`; what the official Helm chart's KEDA query counts,
//! `chart/templates/workers/worker-kedaautoscaler.yaml`).
//!
//! Value = matching task instances in `states` (default queued + running: the states that hold,
//! or are about to hold, a worker slot; pools need no special case, since tasks over a pool's
//! slots stay `scheduled`). A trigger's `per_replica` is the workers' `worker_concurrency`.
//!
//! Per poll, two statements filtered on `state` first, so that both use the `ti_state` index:
//! the count per state (`running` is the work in flight, the rest waits), and the keys of the
//! running task instances. A key seen running at the last poll and gone now is a completion: the
//! task instance left `running` (success, failure, retry), so its slot came free. A task that
//! starts and ends between two polls is seen by neither count (see the README).

mod db;

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::OnceCell;

use super::{Reading, SourceError};
use crate::policy::Load;
use crate::secret::SecretUrl;
pub use db::{Db, Placeholders};

/// Task instance states Airflow has had (2.x and 3.x; `shutdown` until 2.7).
pub const KNOWN_STATES: [&str; 13] = [
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
    "shutdown",
];

const TABLE: &str = "task_instance";

/// `kind = "airflow"` settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AirflowSettings {
    /// Celery queues to count (`task_instance.queue`); empty: every queue.
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default = "default_states")]
    pub states: Vec<String>,
    /// Tasks run by these executors are not Celery work (Airflow 2.10+ `executor` column).
    #[serde(default)]
    pub exclude_executors: Vec<String>,
    /// Queues routed elsewhere, e.g. CeleryKubernetesExecutor's `kubernetes` queue.
    #[serde(default)]
    pub exclude_queues: Vec<String>,
}

fn default_states() -> Vec<String> {
    vec!["queued".to_owned(), "running".to_owned()]
}

impl AirflowSettings {
    /// Settings with the defaults: every queue, queued + running, nothing excluded.
    pub fn all_queues() -> Self {
        AirflowSettings {
            queues: Vec::new(),
            states: default_states(),
            exclude_executors: Vec::new(),
            exclude_queues: Vec::new(),
        }
    }

    /// Problems with the values, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.states.is_empty() {
            problems.push(("states", "must name at least one state (default: [\"queued\", \"running\"])".to_owned()));
        }
        for state in self.states.iter().filter(|s| !KNOWN_STATES.contains(&s.as_str())) {
            problems.push((
                "states",
                format!("{state:?} is not an Airflow task state (one of: {})", KNOWN_STATES.join(", ")),
            ));
        }
        problems
    }
}

/// The source: a shared pool, and what the schema has (detected once).
pub struct AirflowSource {
    db: Db,
    settings: AirflowSettings,
    /// Whether `task_instance` has the `executor` column (Airflow 2.10+).
    executor_column: OnceCell<bool>,
    /// The running task instances at the last poll, and the completions counted so far.
    running: Mutex<Completions>,
}

/// Task instances seen leaving `running`, counted from one poll to the next.
#[derive(Debug, Default)]
struct Completions {
    /// Hashes of the running task instances' keys at the last poll (`None` before the first).
    last: Option<HashSet<u64>>,
    total: u64,
}

impl Completions {
    /// Takes this poll's running keys; returns the completions counted since the source started.
    fn update(&mut self, now: HashSet<u64>) -> u64 {
        if let Some(last) = &self.last {
            self.total += last.difference(&now).count() as u64;
        }
        self.last = Some(now);
        self.total
    }
}

/// The columns that name one try of one task instance, in Airflow 2.x and 3.x alike.
const KEY_COLUMNS: &str = "dag_id, task_id, run_id, map_index, try_number";

/// One try of one task instance: dag, task, run, map index, try number (NULL in old rows).
type TaskKey = (String, String, String, i32, Option<i32>);

impl AirflowSource {
    pub fn new(db: Db, settings: AirflowSettings) -> Self {
        AirflowSource { db, settings, executor_column: OnceCell::new(), running: Mutex::default() }
    }

    /// Opens (lazily) the pool for `url`: one per URL, whatever the number of sources on it.
    pub fn open(url: &SecretUrl, timeout: Duration) -> Result<Db, SourceError> {
        Db::open(url, timeout)
    }

    pub async fn poll(&self) -> Result<Reading, SourceError> {
        let [counts, keys] = self.statements().await?;
        let per_state = self.db.counts(&counts.0, &counts.1).await?;
        let running_keys = self.db.rows::<TaskKey>(&keys.0, &keys.1).await?;
        let count = |running: bool| -> f64 {
            per_state.iter().filter(|(state, _)| (state == "running") == running).map(|(_, n)| (*n).max(0) as f64).sum()
        };
        let (waiting, running) = (count(false), count(true));
        let keys: HashSet<u64> = running_keys.iter().map(key_hash).collect();
        let completed = self.running.lock().unwrap_or_else(|p| p.into_inner()).update(keys);
        let in_flight = self.settings.states.iter().any(|s| s == "running").then_some(running);
        let load = Load { waiting, in_flight, completed: Some(completed), ..Load::default() };
        Ok(Reading { value: waiting + running, load, ..Reading::default() })
    }

    /// The poll's two statements with their binds: the count per state, and the running keys.
    pub async fn statements(&self) -> Result<[(String, Vec<String>); 2], SourceError> {
        let (filter, binds) = self.filter(&self.settings.states).await?;
        let (running, running_binds) = self.filter(&["running".to_owned()]).await?;
        Ok([
            (format!("SELECT state, COUNT(*) FROM {TABLE} WHERE {filter} GROUP BY state"), binds),
            (format!("SELECT {KEY_COLUMNS} FROM {TABLE} WHERE {running}"), running_binds),
        ])
    }

    /// Running task instances per `hostname` (the worker pod's name or FQDN), same filters.
    pub async fn busy_hosts(&self) -> Result<BTreeMap<String, u32>, SourceError> {
        let (filter, binds) = self.filter(&["running".to_owned()]).await?;
        let sql = format!(
            "SELECT hostname, COUNT(*) FROM {TABLE} WHERE {filter} AND hostname IS NOT NULL AND hostname <> '' GROUP BY hostname"
        );
        let rows = self.db.counts(&sql, &binds).await?;
        Ok(rows.into_iter().map(|(host, n)| (host, u32::try_from(n).unwrap_or(u32::MAX))).collect())
    }

    async fn filter(&self, states: &[String]) -> Result<(String, Vec<String>), SourceError> {
        let executor_column = *self.executor_column.get_or_try_init(|| self.detect_executor_column()).await?;
        Ok(filter(&self.settings, states, executor_column, self.db.placeholders()))
    }

    async fn detect_executor_column(&self) -> Result<bool, SourceError> {
        let columns = self.db.columns(TABLE).await?;
        if columns.is_empty() {
            return Err(SourceError::Protocol(format!(
                "no {TABLE} table in this database: is the URL Airflow's metadata database (and schema)?"
            )));
        }
        Ok(columns.iter().any(|c| c.eq_ignore_ascii_case("executor")))
    }
}

fn key_hash(key: &TaskKey) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The `WHERE` clause and its bind values. `state` comes first so that the `ti_state` index can
/// serve the query; a NULL queue or executor is never excluded (NULL executor = the default one).
pub fn filter(
    settings: &AirflowSettings,
    states: &[String],
    executor_column: bool,
    style: Placeholders,
) -> (String, Vec<String>) {
    let mut binds: Vec<String> = Vec::new();
    let mut list = |values: &[String]| {
        let marks: Vec<String> = values
            .iter()
            .map(|v| {
                binds.push(v.clone());
                match style {
                    Placeholders::Numbered => format!("${}", binds.len()),
                    Placeholders::Question => "?".to_owned(),
                }
            })
            .collect();
        marks.join(", ")
    };
    let mut conditions = vec![format!("state IN ({})", list(states))];
    if !settings.queues.is_empty() {
        conditions.push(format!("queue IN ({})", list(&settings.queues)));
    }
    if !settings.exclude_queues.is_empty() {
        conditions.push(format!("(queue IS NULL OR queue NOT IN ({}))", list(&settings.exclude_queues)));
    }
    if executor_column && !settings.exclude_executors.is_empty() {
        conditions.push(format!("(executor IS NULL OR executor NOT IN ({}))", list(&settings.exclude_executors)));
    }
    (conditions.join(" AND "), binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn filters_with_each_backends_placeholders() {
        let settings = AirflowSettings {
            queues: strings(&["default", "etl"]),
            states: default_states(),
            exclude_executors: strings(&["KubernetesExecutor"]),
            exclude_queues: strings(&["kubernetes"]),
        };
        let (sql, binds) = filter(&settings, &settings.states, true, Placeholders::Numbered);
        assert_eq!(
            sql,
            "state IN ($1, $2) AND queue IN ($3, $4) AND (queue IS NULL OR queue NOT IN ($5)) AND (executor IS NULL OR executor NOT IN ($6))"
        );
        assert_eq!(binds, strings(&["queued", "running", "default", "etl", "kubernetes", "KubernetesExecutor"]));
        let (sql, binds) = filter(&settings, &strings(&["running"]), false, Placeholders::Question);
        assert_eq!(
            sql, "state IN (?) AND queue IN (?, ?) AND (queue IS NULL OR queue NOT IN (?))",
            "no executor column before 2.10"
        );
        assert_eq!(binds.len(), 4);
    }

    #[test]
    fn completions_are_the_running_keys_that_left() {
        let mut completions = Completions::default();
        let keys = |ids: &[u64]| ids.iter().copied().collect::<HashSet<u64>>();
        assert_eq!(completions.update(keys(&[1, 2, 3])), 0, "the first poll is a baseline");
        assert_eq!(completions.update(keys(&[2, 3, 4, 5])), 1, "1 left");
        assert_eq!(completions.update(keys(&[5])), 4, "2, 3 and 4 left");
        assert_eq!(completions.update(keys(&[])), 5);
    }

    #[test]
    fn unknown_states_are_problems() {
        let mut settings = AirflowSettings::all_queues();
        assert!(settings.problems().is_empty());
        settings.states = strings(&["queued", "runing"]);
        assert_eq!(settings.problems().len(), 1);
        assert!(settings.problems()[0].1.starts_with("\"runing\" is not an Airflow task state"));
    }
}
