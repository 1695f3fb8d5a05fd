//! The loop: tick → poll the due targets' sources (once each) → per target: read → plan (pure)
//! → apply (only while leader; a conflict means read and plan again) → record; and, between
//! cycles, a reloaded config.

mod apply;
mod cycle;
mod events;
mod observe;
mod plan;
mod reload;
mod report;
mod target;

pub use report::{TargetReport, TriggerReport, render_table};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::config::Config;
use crate::k8s::Kube;
use crate::k8s::lease::{Elector, Fencing, Leadership, LeaseSettings};
use crate::k8s::spot::SpotWatcher;
use crate::metrics::Metrics;
use crate::source::{Shared, Source, SourceSpec};
use events::InternalEvent;
use target::TargetState;

/// The live sources, by name.
type Sources = BTreeMap<String, Source>;

/// How long a cycle in flight may go on after a shutdown signal before it is abandoned.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// The daemon's state: live sources, the targets with their histories, the Kubernetes client.
pub struct App {
    config: Config,
    /// `--dry-run` on the command line: stays on whatever a reloaded config says.
    dry_run_flag: bool,
    dry_run: bool,
    sources: Sources,
    /// The spec each source was built from, to keep it across reloads if unchanged.
    source_specs: BTreeMap<String, SourceSpec>,
    shared: Shared,
    targets: Vec<TargetState>,
    kube: Option<Kube>,
    /// Watches of spot twins' pods and of the Nodes, when a target has a spot twin.
    spot_watcher: Option<SpotWatcher>,
    leadership: Arc<Leadership>,
    /// The elector, once started: only while writing (not under dry-run), and then for good.
    election: Option<tokio::task::JoinHandle<()>>,
    /// Stops the elector (which then releases the lease): only once no cycle is in flight.
    election_stop: CancellationToken,
    health: Option<Arc<Health>>,
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
    Kube(crate::k8s::KubeError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: std::net::SocketAddr, error: std::io::Error },
}

impl App {
    /// Builds sources (connections open lazily) and, unless a dry run finds no cluster, the
    /// Kubernetes client.
    pub async fn new(config: &Config, dry_run_flag: bool) -> Result<App, StartError> {
        let dry_run = dry_run_flag || config.daemon.dry_run;
        let metrics = Metrics::install();
        let kube = match Kube::connect(&config.daemon.field_manager, config.daemon.kube_timeout).await {
            Ok(kube) => Some(kube),
            Err(error) if dry_run => {
                tracing::warn!(%error, "no cluster: dry run assumes every target starts at min_replicas");
                None
            }
            Err(error) => return Err(StartError::Kube(error)),
        };
        // Under dry-run the lease is not contended for (nothing is written), but leadership is
        // still elected: a reload that turns writing on starts the election, and until it wins
        // this replica does not write (issue #13: with `always()` both replicas wrote).
        let elected = config.daemon.leader_election.as_ref().filter(|_| kube.is_some());
        let leadership = elected.map_or_else(Leadership::always, |e| {
            Leadership::elected(Fencing {
                lease_duration: e.lease_duration,
                renew_deadline: e.renew_deadline,
                write_timeout: config.daemon.kube_timeout,
            })
        });
        metrics.leader(leadership.is_leader());
        let mut app = App {
            config: config.clone(),
            dry_run_flag,
            dry_run,
            sources: BTreeMap::new(),
            source_specs: BTreeMap::new(),
            shared: Shared::default(),
            targets: Vec::new(),
            kube,
            spot_watcher: None,
            leadership,
            election: None,
            election_stop: CancellationToken::new(),
            health: None,
            metrics,
            started: Instant::now(),
        };
        app.build_sources(config).map_err(|(name, error)| StartError::Source { name, error })?;
        app.build_targets(config);
        Ok(app)
    }

    /// Runs until `shutdown`: serves the admin endpoints, keeps the lease (with leader election),
    /// watches the config file, and runs a cycle whenever a target is due. A shutdown lets the
    /// cycle in flight finish (for up to a few seconds), then releases the lease.
    pub async fn run(mut self, config_path: Option<PathBuf>, shutdown: CancellationToken) -> Result<(), StartError> {
        let listen = self.config.daemon.listen;
        let details = self.config.daemon.admin_details;
        let health = Arc::new(Health::new(self.longest_interval(), self.leadership.clone()).with_details(details));
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|error| StartError::Listen { addr: listen, error })?;
        tracing::info!(%listen, targets = self.targets.len(), dry_run = self.dry_run, "queue-autoscaler started");
        let mut tasks =
            vec![tokio::spawn(admin::serve(listener, self.metrics.clone(), health.clone(), shutdown.clone()))];
        self.health = Some(health.clone());
        self.start_election();
        let (reload_tx, mut reloads) = tokio::sync::mpsc::channel(1);
        if let Some(path) = config_path {
            let check = self.config.daemon.config_check_interval;
            tasks.push(tokio::spawn(reload::watch(path, check, reload_tx, self.metrics.clone(), shutdown.clone())));
        }
        while let Some(next) = self.next_due() {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                Some(config) = reloads.recv() => {
                    self.reconfigure(config).await;
                    continue;
                }
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
        // The cycle in flight has ended (or was abandoned, dropping its writes): only now may the
        // lease go to another replica.
        self.election_stop.cancel();
        tasks.extend(self.election.take());
        if let Some(watcher) = &self.spot_watcher {
            watcher.stop();
        }
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "a background task failed");
            }
        }
        Ok(())
    }

    /// One cycle for every target, whether due or not (the `once` command).
    pub async fn once(&mut self) -> Vec<TargetReport> {
        self.cycle(true).await
    }

    /// Starts contending for the lease, once, when leader election is on and this replica
    /// writes (not under dry-run).
    fn start_election(&mut self) {
        if self.election.is_none() && !self.dry_run {
            self.election = self.elector(self.election_stop.clone());
        }
    }

    fn elector(&self, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let election = self.config.daemon.leader_election.as_ref()?;
        let kube = self.kube.as_ref().filter(|_| self.leadership.is_elected())?;
        let settings = LeaseSettings {
            name: election.lease_name.clone(),
            namespace: election.namespace.clone(),
            identity: identity(),
            lease_duration: election.lease_duration,
            renew_deadline: election.renew_deadline,
            retry_period: election.retry_period,
        };
        tracing::info!(identity = %settings.identity, lease = %settings.name, namespace = %settings.namespace, "leader election: standing by until the lease is held");
        let metrics = self.metrics.clone();
        let elector = Elector::new(
            kube.client(),
            settings,
            self.leadership.clone(),
            Box::new(move |leading| metrics.leader(leading)),
        );
        Some(tokio::spawn(elector.run(shutdown)))
    }

    /// Builds the sources of `config`, keeping those whose spec did not change (and so their
    /// connections); database pools are shared by URL across reloads. Nothing changes on error.
    fn build_sources(&mut self, config: &Config) -> Result<(), (String, crate::source::SourceError)> {
        let mut built = BTreeMap::new();
        for (name, spec) in config.sources.iter().filter(|(name, spec)| self.source_specs.get(*name) != Some(*spec)) {
            let source = Source::with_shared(spec, &mut self.shared).map_err(|e| (name.clone(), e))?;
            self.metrics.register_source(name, source.kind());
            // `SecretUrl` displays with the password replaced.
            let url = spec.url.as_ref().map(ToString::to_string).unwrap_or_default();
            tracing::info!(source = %name, kind = source.kind().as_str(), %url, "source ready");
            built.insert(name.clone(), source);
        }
        for name in config.sources.keys() {
            if !built.contains_key(name)
                && let Some(kept) = self.sources.remove(name)
            {
                built.insert(name.clone(), kept);
            }
        }
        for (name, removed) in self.sources.iter().filter(|(name, _)| !config.sources.contains_key(*name)) {
            self.metrics.retire_source(name, removed.kind());
        }
        self.sources = built;
        self.source_specs = config.sources.clone();
        self.shared.prune();
        Ok(())
    }

    /// Builds the targets of `config`, keeping the history of targets that keep their name.
    fn build_targets(&mut self, config: &Config) {
        let mut old: BTreeMap<String, TargetState> =
            std::mem::take(&mut self.targets).into_iter().map(|t| (t.spec.name.clone(), t)).collect();
        for spec in &config.targets {
            let state = match old.remove(&spec.name) {
                Some(mut state) => {
                    state.reconfigure(spec, &self.metrics);
                    state
                }
                None => TargetState::new(spec, &self.metrics, Instant::now()),
            };
            self.targets.push(state);
        }
        // What is left was removed: its pod watch stops as it drops, its series leave /metrics.
        for removed in old.into_values() {
            self.metrics.retire_target(&removed.labels);
        }
        let any_spot = config.targets.iter().any(|t| t.spot.is_some());
        if any_spot && self.spot_watcher.is_none() {
            let metrics = self.metrics.clone();
            let on_error: crate::k8s::spot::OnWatchError = Arc::new(move |watch, label, error| {
                events::WatchFailed { watch, label, error }.emit(&metrics);
            });
            self.spot_watcher = self.kube.as_ref().map(|k| SpotWatcher::new(k.watch_client(), on_error));
        }
    }

    /// Takes a reloaded, valid config into use for the next cycle.
    async fn reconfigure(&mut self, config: Config) {
        let (old, new) = (&self.config.daemon, &config.daemon);
        if old.listen != new.listen || old.leader_election != new.leader_election {
            tracing::warn!("daemon.listen and daemon.leader_election take effect at the next restart");
        }
        if (old.field_manager != new.field_manager || old.kube_timeout != new.kube_timeout) && self.kube.is_some() {
            match Kube::connect(&new.field_manager, new.kube_timeout).await {
                Ok(kube) => {
                    self.kube = Some(kube);
                    self.leadership.set_write_timeout(new.kube_timeout);
                }
                Err(error) => tracing::warn!(%error, "keeping the Kubernetes client: the new settings do not connect"),
            }
        }
        if let Err((name, error)) = self.build_sources(&config) {
            tracing::error!(source = %name, %error, "config reload: a source cannot be built; keeping the running config");
            self.metrics.config_reload_failed();
            return;
        }
        self.build_targets(&config);
        self.dry_run = self.dry_run_flag || config.daemon.dry_run;
        self.config = config;
        self.start_election();
        if let Some(health) = &self.health {
            health.set_interval(self.longest_interval());
        }
        tracing::info!(
            sources = self.sources.len(),
            targets = self.targets.len(),
            dry_run = self.dry_run,
            "config reloaded"
        );
        self.metrics.config_reloaded();
    }

    fn next_due(&self) -> Option<Instant> {
        self.targets.iter().map(|t| t.next_due).min()
    }

    fn longest_interval(&self) -> Duration {
        self.targets.iter().map(|t| t.spec.interval).max().unwrap_or(Duration::from_secs(15))
    }
}

/// This replica's identity on the lease: the pod's name, else the host's, with the process id.
fn identity() -> String {
    std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        format!("{}_{}", if host.is_empty() { "queue-autoscaler" } else { &host }, std::process::id())
    })
}
