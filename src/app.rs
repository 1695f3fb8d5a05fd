//! The loop: tick → poll the due targets' sources (once each) → decide → write → record.

mod busy;
mod cycle;
mod report;
mod spot;
mod target;

pub use report::{TargetReport, TriggerReport, render_table};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::source::{Shared, Source};
use crate::target::Deployments;
use crate::target::spot::SpotWatcher;
use target::TargetState;

/// How long a cycle in flight may go on after a shutdown signal before it is abandoned.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// The daemon's state: live sources, the targets with their histories, the Kubernetes client.
pub struct App {
    dry_run: bool,
    sources: BTreeMap<String, Source>,
    targets: Vec<TargetState>,
    kube: Option<Deployments>,
    /// Watches of spot twins' pods and of the Nodes, when a target has a spot twin.
    spot_watcher: Option<SpotWatcher>,
    metrics: Metrics,
    /// The origin of the policy's clock.
    started: Instant,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("source {name}: {error}")]
    Source { name: String, error: crate::source::SourceError },
    #[error("{0}; use --dry-run to run without a cluster")]
    Kube(crate::target::TargetError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: std::net::SocketAddr, error: std::io::Error },
}

impl App {
    /// Builds sources (connections open lazily) and, unless a dry run finds no cluster, the
    /// Kubernetes client.
    pub async fn new(config: &Config, dry_run: bool) -> Result<App, StartError> {
        let metrics = Metrics::install();
        let mut shared = Shared::default();
        let sources = config
            .sources
            .iter()
            .map(|(name, spec)| {
                let source = Source::with_shared(spec, &mut shared)
                    .map_err(|error| StartError::Source { name: name.clone(), error })?;
                metrics.register_source(name, source.kind());
                Ok((name.clone(), source))
            })
            .collect::<Result<_, StartError>>()?;
        let kube = match Deployments::connect(&config.daemon.field_manager, config.daemon.kube_timeout).await {
            Ok(kube) => Some(kube),
            Err(error) if dry_run => {
                tracing::warn!(%error, "no cluster: dry run assumes every target starts at min_replicas");
                None
            }
            Err(error) => return Err(StartError::Kube(error)),
        };
        let started = Instant::now();
        let targets = config.targets.iter().map(|t| TargetState::new(t, &metrics, started)).collect();
        let any_spot = config.targets.iter().any(|t| t.spot.is_some());
        let spot_watcher = kube.as_ref().filter(|_| any_spot).map(|k| SpotWatcher::new(k.client()));
        Ok(App { dry_run, sources, targets, kube, spot_watcher, metrics, started })
    }

    /// Runs until `shutdown`: serves the admin endpoints and runs a cycle whenever a target is
    /// due. A shutdown lets the cycle in flight finish (for up to a few seconds).
    pub async fn run(mut self, listen: std::net::SocketAddr, shutdown: CancellationToken) -> Result<(), StartError> {
        let health = Arc::new(Health::new(self.longest_interval()));
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|error| StartError::Listen { addr: listen, error })?;
        tracing::info!(%listen, targets = self.targets.len(), dry_run = self.dry_run, "queue-autoscaler started");
        let server = tokio::spawn(admin::serve(listener, self.metrics.clone(), health.clone(), shutdown.clone()));
        while let Some(next) = self.next_due() {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.cancelled() => break,
            }
            let grace = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                _ = self.cycle(false) => health.cycle_done(),
                _ = grace => tracing::warn!("shutdown: abandoned the cycle in flight"),
            }
        }
        tracing::info!("queue-autoscaler stopping");
        shutdown.cancel();
        if let Some(watcher) = &self.spot_watcher {
            watcher.stop();
        }
        if let Err(error) = server.await {
            tracing::warn!(%error, "admin server task failed");
        }
        Ok(())
    }

    /// One cycle for every target, whether due or not (the `once` command).
    pub async fn once(&mut self) -> Vec<TargetReport> {
        self.cycle(true).await
    }

    fn next_due(&self) -> Option<Instant> {
        self.targets.iter().map(|t| t.next_due).min()
    }

    fn longest_interval(&self) -> Duration {
        self.targets.iter().map(|t| t.spec.interval).max().unwrap_or(Duration::from_secs(15))
    }
}
