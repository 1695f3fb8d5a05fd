//! What the end-to-end and fault tests start from: a queue of their own on the real Redis, and a
//! test API server with the Deployment `data/worker`.

use redis::aio::MultiplexedConnection;

use super::apiserver::ApiServer;
use super::redis::{self as test_redis, push};
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
