//! The TOML config, loaded once into validated values.
//!
//! The file is read with the `config` crate, `QUEUE_AUTOSCALER__SECTION__KEY` environment
//! variables override any key (`__` separates levels, a number indexes an array:
//! `QUEUE_AUTOSCALER__TARGETS__0__MAX_REPLICAS=30`), and every problem names its key path and,
//! where the file has the key, its line.

mod env;
mod problems;
mod raw;
mod warnings;

pub use problems::{ConfigError, Problem};
pub use warnings::{Warning, warnings};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::policy::TargetPolicy;
use crate::policy::spot::SpotPolicy;
use crate::source::SourceSpec;

/// The prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "QUEUE_AUTOSCALER__";

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: Daemon,
    /// Named sources, shared by any number of targets.
    pub sources: BTreeMap<String, SourceSpec>,
    pub targets: Vec<Target>,
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    /// Default poll interval of every target.
    pub interval: Duration,
    /// Address of /metrics, /healthz and /readyz.
    pub listen: SocketAddr,
    /// Field manager of every write to the Kubernetes API.
    pub field_manager: String,
    /// Decide and report, never write.
    pub dry_run: bool,
    /// Bound on every Kubernetes API request.
    pub kube_timeout: Duration,
    /// How often the config file is checked for changes (SIGHUP reloads at once).
    pub config_check_interval: Duration,
    /// `None` when leader election is off: this replica always writes.
    pub leader_election: Option<LeaderElection>,
    /// Whether `/readyz` names the pod that holds the lease (off: it says only leader or standby,
    /// so that the admin port tells nothing about the cluster).
    pub admin_details: bool,
}

/// `[daemon.leader_election]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderElection {
    pub lease_name: String,
    /// The daemon's own namespace (default: `POD_NAMESPACE`, else "default").
    pub namespace: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// One `[[targets]]` entry: a workload (a Deployment or a StatefulSet) and the rules that size it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub namespace: String,
    /// What kind of workload `workload` names.
    pub kind: WorkloadKind,
    /// The workload's name: `deployment = "…"`, or `statefulset = "…"` with `kind = "StatefulSet"`.
    pub workload: String,
    pub interval: Duration,
    pub policy: TargetPolicy,
    /// The spot twin, when the target splits its replicas over on-demand and spot capacity.
    pub spot: Option<SpotTarget>,
    /// Busy-aware scale-in, when `protect_busy_workers = true`.
    pub busy: Option<BusyWorkers>,
    /// How the workload behaves, for `simulate`.
    pub simulation: Option<Simulation>,
}

/// The kinds of workload a target scales, both through their `scale` subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    /// The official Airflow chart runs its Celery workers as one (`workers.persistence.enabled`).
    StatefulSet,
}

impl WorkloadKind {
    /// The kind as the API spells it (`kind:` in a manifest, `regarding.kind` of an Event).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        }
    }

    /// The API resource (group `apps`): `deployments`, `statefulsets`.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        }
    }
}

/// `[targets.simulation]`: the workload model `simulate` replays a trace through.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// Tasks one replica runs at once.
    pub slots: u32,
    /// Mean seconds a task runs (exponentially distributed, unless the trace gives each second's).
    pub service_seconds: f64,
    /// From a scale-up to a replica that works (scheduling, image, start-up).
    pub startup_delay: Duration,
    /// Spot interruptions per spot replica-hour (each replaced after `startup_delay`).
    pub spot_interruption_rate: f64,
    /// Price of one replica-hour.
    pub on_demand_price: f64,
    pub spot_price: f64,
}

/// Scale-in that never kills a busy worker.
#[derive(Debug, Clone, PartialEq)]
pub struct BusyWorkers {
    /// The Airflow source that says which workers run tasks.
    pub source: String,
    /// Never scale below the number of busy pods (`busy_workers_floor`, default true).
    pub floor: bool,
}

/// `[targets.spot]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotTarget {
    /// The spot twin Deployment, in the target's namespace.
    pub deployment: String,
    pub policy: SpotPolicy,
    /// Spot pods Pending as Unschedulable for longer than this count as a shortfall.
    pub unschedulable_after: Duration,
    /// Node taint keys that mean "being reclaimed", beyond the built-in list.
    pub extra_taints: Vec<String>,
}

impl Config {
    /// Reads and validates the file at `path`, with overrides from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single(Problem::new("", format!("cannot read {}: {e}", path.display()))))?;
        Config::parse(&text, std::env::vars())
    }

    /// Validates TOML `text` with overrides taken from `env` (pairs of variable and value).
    pub fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        let overrides = env::overrides(env.clone());
        raw::parse(text, &overrides, &env).map_err(|problems| ConfigError::new(problems, text))
    }
}
