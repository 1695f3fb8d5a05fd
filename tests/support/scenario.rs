//! What the end-to-end and fault tests start from: a queue of their own on the real Redis, and a
//! test API server with the Deployment `data/worker`; or, for busy-aware scale-in, an Airflow task
//! table of their own and `airflow/worker` (a Deployment or a StatefulSet) with its pods.

use redis::aio::MultiplexedConnection;

use super::airflow::{Backend, Schema, TestDb};
use super::apiserver::ApiServer;
use super::daemon::{Daemon, free_port};
use super::redis::{self as test_redis, push};
use super::toml::Toml;
use super::unique;

pub struct Scenario {
    pub redis: MultiplexedConnection,
    pub queue: String,
    pub api: ApiServer,
    /// Where kubeconfigs and config files go.
    pub dir: tempfile::TempDir,
}

impl Scenario {
    /// A queue named after `name`, and `data/worker` at `replicas`.
    pub async fn new(name: &str, replicas: i64) -> Scenario {
        let api = ApiServer::start().await;
        api.add_deployment("data", "worker", replicas);
        Scenario { redis: test_redis::connect().await, queue: unique(name), api, dir: tempfile::tempdir().unwrap() }
    }

    pub async fn push(&mut self, n: usize) {
        push(&mut self.redis, &self.queue, &self.queue, n).await;
    }

    pub async fn drain(&mut self) {
        let () = redis::cmd("DEL").arg(&self.queue).query_async(&mut self.redis).await.unwrap();
    }

    pub fn replicas_are(&self, n: i64) -> Option<()> {
        (self.api.replicas("data", "worker") == n).then_some(())
    }

    /// The replicas of every successful scale write, in order.
    pub fn written(&self) -> Vec<i64> {
        self.api.scale_writes().iter().map(|w| w.replicas).collect()
    }
}

/// Busy-aware scale-in on Airflow: a task table of its own on PostgreSQL, and `airflow/worker`
/// with as many running pods as replicas.
pub struct AirflowWorkers {
    pub db: TestDb,
    pub api: ApiServer,
    /// The daemon's admin port.
    pub port: u16,
    pub dir: tempfile::TempDir,
    statefulset: bool,
}

impl AirflowWorkers {
    /// `airflow/worker` a Deployment, with its pods put as the ReplicaSet would have them.
    pub async fn new(name: &str, replicas: usize) -> AirflowWorkers {
        let workers = AirflowWorkers::start(name, false).await;
        workers.api.add_deployment("airflow", "worker", i64::try_from(replicas).unwrap());
        workers.pods(replicas);
        workers
    }

    /// `airflow/worker` a StatefulSet, whose pods `worker-N` the test API server creates and
    /// removes by ordinal.
    pub async fn statefulset(name: &str, replicas: usize) -> AirflowWorkers {
        let workers = AirflowWorkers::start(name, true).await;
        workers.api.add_statefulset("airflow", "worker", i64::try_from(replicas).unwrap());
        workers
    }

    async fn start(name: &str, statefulset: bool) -> AirflowWorkers {
        let db = TestDb::create(Backend::Postgres, name).await;
        db.create_task_instance(Schema::V2_10).await;
        let api = ApiServer::start().await;
        AirflowWorkers { db, api, port: free_port(), dir: tempfile::tempdir().unwrap(), statefulset }
    }

    /// `worker-0` … `worker-{n-1}`, running, as the ReplicaSet would have them.
    pub fn pods(&self, n: usize) {
        for i in 0..n {
            self.api.put_pod("airflow", &format!("worker-{i}"), &[("app", "worker")], Some("node-1"), None);
        }
    }

    /// The daemon on [`busy_config`], asking `busy_url` (else the task table's own source) which
    /// workers are busy.
    pub fn daemon(&self, busy_url: Option<&str>) -> Daemon {
        Daemon::start(&self.config(busy_url), &["run"], Some(&self.api.kubeconfig(self.dir.path())), &[])
    }

    /// The daemon's config.
    pub fn config(&self, busy_url: Option<&str>) -> String {
        busy_config(&self.db.url, busy_url, self.port, self.statefulset)
    }

    /// The `airflow/worker` replicas now.
    pub fn replicas(&self) -> i64 {
        match self.statefulset {
            true => self.api.statefulset_replicas("airflow", "worker"),
            false => self.api.replicas("airflow", "worker"),
        }
    }

    /// The `airflow/worker` replicas, when they are `n`.
    pub fn replicas_are(&self, n: i64) -> Option<()> {
        (self.replicas() == n).then_some(())
    }

    pub async fn drop_database(self) {
        self.db.drop_database().await;
    }
}

/// Airflow tasks at 4 per worker (a small `worker_concurrency`), bounds [1, 10], HPA-like rate
/// policies over 500 ms and no scale-down window, so the test runs in seconds; the busy workers
/// from a source `busy` on `busy_url` if given; `airflow/worker` a StatefulSet if `statefulset`.
fn busy_config(db_url: &str, busy_url: Option<&str>, port: u16, statefulset: bool) -> String {
    let mut toml = Toml::daemon(port).airflow("airflow", db_url);
    if let Some(url) = busy_url {
        toml = toml.airflow("busy", url).raw("timeout = \"1s\"");
    }
    toml = toml.target("airflow-workers", "airflow", "worker");
    if statefulset {
        toml = toml.statefulset();
    }
    toml = toml.bounds(1, 10).per_replica("airflow", 4).raw("protect_busy_workers = true");
    if busy_url.is_some() {
        toml = toml.raw("busy_workers_source = \"busy\"");
    }
    toml.scale_up_pods(4).scale_down_at_once().render()
}
