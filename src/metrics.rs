//! Every metric the daemon exports: names in one place, recorded through semantic methods.
//!
//! Labels are bounded: names from the config, and static strings (error labels, reason labels,
//! directions).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Label, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::k8s::KubeError;
use crate::k8s::spot::WATCH_ERROR_LABELS;
use crate::policy::spot::{Placement, Split};
use crate::policy::{Decision, Prediction, Reason};
use crate::source::{Kind, Reading, SourceError};

pub const SOURCE_VALUE: &str = "queue_autoscaler_source_value";
pub const SOURCE_POLL_SECONDS: &str = "queue_autoscaler_source_poll_seconds";
pub const SOURCE_ERRORS: &str = "queue_autoscaler_source_errors_total";
pub const SOURCE_SKIPPED: &str = "queue_autoscaler_source_skipped_entries_total";
pub const TARGET_DESIRED: &str = "queue_autoscaler_target_desired_replicas";
pub const TARGET_CURRENT: &str = "queue_autoscaler_target_current_replicas";
pub const TARGET_ERRORS: &str = "queue_autoscaler_target_errors_total";
pub const DECISIONS: &str = "queue_autoscaler_decisions_total";
pub const SCALE_EVENTS: &str = "queue_autoscaler_scale_events_total";
pub const LOOP_SECONDS: &str = "queue_autoscaler_loop_seconds";
pub const BUILD_INFO: &str = "queue_autoscaler_build_info";
pub const TARGET_REPLICAS: &str = "queue_autoscaler_target_replicas";
pub const SPOT_SHORTFALL: &str = "queue_autoscaler_spot_shortfall";
pub const SPOT_FALLBACK_ACTIVE: &str = "queue_autoscaler_spot_fallback_active";
pub const TARGET_BUSY_PODS: &str = "queue_autoscaler_target_busy_pods";
pub const LEADER: &str = "queue_autoscaler_leader";
pub const CONFIG_RELOADS: &str = "queue_autoscaler_config_reloads_total";
pub const CONFIG_RELOAD_ERRORS: &str = "queue_autoscaler_config_reload_errors_total";
pub const TARGET_ARRIVAL_RATE: &str = "queue_autoscaler_target_arrival_rate";
pub const TARGET_COMPLETION_RATE: &str = "queue_autoscaler_target_completion_rate";
pub const TARGET_PREDICTED_WAIT: &str = "queue_autoscaler_target_predicted_wait_seconds";
pub const TARGET_UTILIZATION: &str = "queue_autoscaler_target_utilization";
pub const WATCH_ERRORS: &str = "queue_autoscaler_watch_errors_total";

/// Off by default (one series per partition): `partition_metrics = true` on a Kafka source.
pub const KAFKA_PARTITION_LAG: &str = "queue_autoscaler_kafka_partition_lag";
/// Only for Celery sources with `events = true`, from their first poll.
pub const CELERY_EVENT_WORKERS: &str = "queue_autoscaler_celery_event_workers";
/// Metrics a source exports only when asked to.
pub const OPT_IN: [&str; 2] = [KAFKA_PARTITION_LAG, CELERY_EVENT_WORKERS];

/// Every metric name, for documentation checks and dashboards.
pub const ALL: [&str; 23] = [
    SOURCE_VALUE,
    SOURCE_POLL_SECONDS,
    SOURCE_ERRORS,
    SOURCE_SKIPPED,
    TARGET_DESIRED,
    TARGET_CURRENT,
    TARGET_ERRORS,
    DECISIONS,
    SCALE_EVENTS,
    LOOP_SECONDS,
    BUILD_INFO,
    TARGET_REPLICAS,
    SPOT_SHORTFALL,
    SPOT_FALLBACK_ACTIVE,
    TARGET_BUSY_PODS,
    LEADER,
    CONFIG_RELOADS,
    CONFIG_RELOAD_ERRORS,
    TARGET_ARRIVAL_RATE,
    TARGET_COMPLETION_RATE,
    TARGET_PREDICTED_WAIT,
    TARGET_UTILIZATION,
    WATCH_ERRORS,
];

/// The gauges of a target with a wait objective.
const OBJECTIVE_GAUGES: [&str; 4] =
    [TARGET_ARRIVAL_RATE, TARGET_COMPLETION_RATE, TARGET_PREDICTED_WAIT, TARGET_UTILIZATION];

/// Buckets for poll and loop latencies, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The process-wide Prometheus recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    /// Label sets of targets and sources a reload removed, as they open a rendered series
    /// (`{target="a",namespace="n",deployment="d"`): their series are left out of `/metrics`.
    /// The exporter has no way to delete a series (metrics-exporter-prometheus 0.18 keeps its
    /// registry private), so they are hidden where they are rendered.
    retired: Arc<Mutex<BTreeSet<String>>>,
}

static INSTALLED: OnceLock<Metrics> = OnceLock::new();

impl Metrics {
    /// Installs the global recorder on first call; later calls return the same one.
    pub fn install() -> Metrics {
        INSTALLED
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                    .map(PrometheusBuilder::build_recorder)
                    // The bucket list is a non-empty constant, the one thing `set_buckets_for_metric` checks.
                    .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
                let handle = recorder.handle();
                // Fails only if another recorder was installed first, which nothing in this crate does.
                let _ = metrics::set_global_recorder(recorder);
                describe();
                gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                counter!(CONFIG_RELOADS).absolute(0);
                counter!(CONFIG_RELOAD_ERRORS).absolute(0);
                let _ = histogram!(LOOP_SECONDS);
                for watch in ["pods", "nodes"] {
                    for error in WATCH_ERROR_LABELS {
                        counter!(WATCH_ERRORS, "watch" => watch, "error" => error).absolute(0);
                    }
                }
                Metrics { handle, retired: Arc::default() }
            })
            .clone()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        let page = self.handle.render();
        let retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        if retired.is_empty() {
            return page;
        }
        let current = |line: &str| {
            !retired.iter().any(|opening| {
                line.find(opening.as_str())
                    .is_some_and(|at| matches!(line.as_bytes().get(at + opening.len()), Some(b',' | b'}')))
            })
        };
        let mut kept: String = page.lines().filter(|l| current(l)).collect::<Vec<_>>().join("\n");
        kept.push('\n');
        kept
    }

    /// Leaves the series of a target that a reload removed (or moved to another Deployment)
    /// out of `/metrics`, until it is registered again.
    pub fn retire_target(&self, target: &TargetLabels) {
        self.retire(opening(&target.0), true);
    }

    /// Leaves the series of a source that a reload removed out of `/metrics`.
    pub fn retire_source(&self, source: &str, kind: Kind) {
        self.retire(opening(&source_labels(source, kind)), true);
        // Kafka's per-partition lag: `{source="s",topic=…`.
        self.retire(opening(&[Label::new("source", source.to_owned())]), true);
    }

    fn retire(&self, opening: String, retired: bool) {
        let mut set = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        if retired {
            set.insert(opening);
        } else {
            set.remove(&opening);
        }
    }

    /// Registers a source's series at zero, so dashboards show 0 rather than "no data".
    pub fn register_source(&self, source: &str, kind: Kind) {
        let labels = source_labels(source, kind);
        self.retire(opening(&labels), false);
        self.retire(opening(&[Label::new("source", source.to_owned())]), false);
        gauge!(SOURCE_VALUE, labels.clone()).set(0.0);
        let _ = histogram!(SOURCE_POLL_SECONDS, labels.clone());
        counter!(SOURCE_SKIPPED, labels.clone()).absolute(0);
        for error in SourceError::LABELS {
            counter!(SOURCE_ERRORS, with(&labels, "error", error)).absolute(0);
        }
    }

    /// Registers a target's series at zero.
    pub fn register_target(&self, target: &TargetLabels, spot: bool, busy: bool, objective: bool) {
        self.retire(opening(&target.0), false);
        for direction in ["up", "down"] {
            counter!(SCALE_EVENTS, with(&target.0, "direction", direction)).absolute(0);
        }
        gauge!(TARGET_DESIRED, target.0.clone()).set(0.0);
        gauge!(TARGET_CURRENT, target.0.clone()).set(0.0);
        for error in KubeError::LABELS {
            counter!(TARGET_ERRORS, with(&target.0, "error", error)).absolute(0);
        }
        for reason in Reason::LABELS {
            counter!(DECISIONS, with(&target.0, "reason", reason)).absolute(0);
        }
        for capacity in ["on_demand", "spot"] {
            for state in ["desired", "current"] {
                gauge!(TARGET_REPLICAS, replicas_labels(target, capacity, state)).set(0.0);
            }
        }
        if spot {
            gauge!(SPOT_SHORTFALL, target.0.clone()).set(0.0);
            gauge!(SPOT_FALLBACK_ACTIVE, target.0.clone()).set(0.0);
        }
        if busy {
            gauge!(TARGET_BUSY_PODS, target.0.clone()).set(0.0);
        }
        for name in OBJECTIVE_GAUGES.into_iter().filter(|_| objective) {
            gauge!(name, target.0.clone()).set(0.0);
        }
    }

    /// Worker pods found running tasks before a scale-down.
    pub fn busy_pods(&self, target: &TargetLabels, busy: u32) {
        gauge!(TARGET_BUSY_PODS, target.0.clone()).set(f64::from(busy));
    }

    /// Where the replicas go (desired) and are (current), per capacity type; spot health for a
    /// target with a spot twin.
    pub fn placed(&self, target: &TargetLabels, desired: Split, current: Option<Split>, spot: Option<Placement>) {
        let set = |capacity, state, n: u32| {
            gauge!(TARGET_REPLICAS, replicas_labels(target, capacity, state)).set(f64::from(n))
        };
        set("on_demand", "desired", desired.on_demand);
        set("spot", "desired", desired.spot);
        if let Some(current) = current {
            set("on_demand", "current", current.on_demand);
            set("spot", "current", current.spot);
        }
        if let Some(placement) = spot {
            gauge!(SPOT_SHORTFALL, target.0.clone()).set(f64::from(placement.shortfall));
            gauge!(SPOT_FALLBACK_ACTIVE, target.0.clone()).set(if placement.fallback_active() { 1.0 } else { 0.0 });
        }
    }

    pub fn source_polled(
        &self,
        source: &str,
        kind: Kind,
        result: &Result<Reading, SourceError>,
        took: Duration,
        partitions: bool,
    ) {
        let labels = source_labels(source, kind);
        histogram!(SOURCE_POLL_SECONDS, labels.clone()).record(took.as_secs_f64());
        match result {
            Ok(reading) => {
                gauge!(SOURCE_VALUE, labels.clone()).set(reading.value);
                for p in reading.partitions.iter().filter(|_| partitions) {
                    let labels = [
                        ("source", source.to_owned()),
                        ("topic", p.topic.clone()),
                        ("partition", p.partition.to_string()),
                    ];
                    gauge!(KAFKA_PARTITION_LAG, &labels).set(p.lag as f64);
                }
                if let Some(events) = &reading.events {
                    gauge!(CELERY_EVENT_WORKERS, "source" => source.to_owned()).set(f64::from(events.sending()));
                }
                if reading.skipped > 0 {
                    counter!(SOURCE_SKIPPED, labels).increment(reading.skipped);
                }
            }
            Err(error) => counter!(SOURCE_ERRORS, with(&labels, "error", error.label())).increment(1),
        }
    }

    pub fn decided(&self, target: &TargetLabels, current: Option<u32>, decision: &Decision) {
        gauge!(TARGET_DESIRED, target.0.clone()).set(f64::from(decision.replicas));
        if let Some(current) = current {
            gauge!(TARGET_CURRENT, target.0.clone()).set(f64::from(current));
        }
        counter!(DECISIONS, with(&target.0, "reason", decision.reason.label())).increment(1);
        if let Some(prediction) = decision.prediction() {
            self.predicted(target, prediction);
        }
    }

    /// What the wait objective estimated and predicted for the driving trigger.
    fn predicted(&self, target: &TargetLabels, prediction: &Prediction) {
        let estimate = &prediction.estimate;
        gauge!(TARGET_ARRIVAL_RATE, target.0.clone()).set(estimate.arrival_rate);
        if let Some(rate) = prediction.completion_rate() {
            gauge!(TARGET_COMPLETION_RATE, target.0.clone()).set(rate);
        }
        gauge!(TARGET_PREDICTED_WAIT, target.0.clone()).set(prediction.predicted_wait);
        if let Some(utilization) = prediction.utilization() {
            gauge!(TARGET_UTILIZATION, target.0.clone()).set(utilization);
        }
    }

    pub fn rescaled(&self, target: &TargetLabels, from: u32, to: u32) {
        let direction = if to > from { "up" } else { "down" };
        counter!(SCALE_EVENTS, with(&target.0, "direction", direction)).increment(1);
        gauge!(TARGET_CURRENT, target.0.clone()).set(f64::from(to));
    }

    pub fn target_failed(&self, target: &TargetLabels, error: &'static str) {
        counter!(TARGET_ERRORS, with(&target.0, "error", error)).increment(1);
    }

    /// 1 while this replica holds the lease (always 1 without leader election).
    pub fn leader(&self, leading: bool) {
        gauge!(LEADER).set(if leading { 1.0 } else { 0.0 });
    }

    pub fn config_reloaded(&self) {
        counter!(CONFIG_RELOADS).increment(1);
    }

    pub fn config_reload_failed(&self) {
        counter!(CONFIG_RELOAD_ERRORS).increment(1);
    }

    /// A watch (spot twins' pods, the Nodes) failed; it resumes by itself.
    pub fn watch_failed(&self, watch: &'static str, error: &'static str) {
        counter!(WATCH_ERRORS, "watch" => watch, "error" => error).increment(1);
    }

    pub fn loop_finished(&self, took: Duration) {
        histogram!(LOOP_SECONDS).record(took.as_secs_f64());
    }
}

/// The `{target, namespace, deployment}` labels of one target.
#[derive(Debug, Clone)]
pub struct TargetLabels(Vec<Label>);

impl TargetLabels {
    pub fn new(target: &str, namespace: &str, deployment: &str) -> Self {
        TargetLabels(vec![
            Label::new("target", target.to_owned()),
            Label::new("namespace", namespace.to_owned()),
            Label::new("deployment", deployment.to_owned()),
        ])
    }
}

fn replicas_labels(target: &TargetLabels, capacity: &'static str, state: &'static str) -> Vec<Label> {
    let mut labels = with(&target.0, "capacity", capacity);
    labels.push(Label::from_static_parts("state", state));
    labels
}

/// How a series with these labels first opens in the text exposition: `{a="x",b="y"` (values
/// escaped as the exporter escapes them).
fn opening(labels: &[Label]) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let pairs: Vec<String> = labels.iter().map(|l| format!("{}=\"{}\"", l.key(), escape(l.value()))).collect();
    format!("{{{}", pairs.join(","))
}

fn source_labels(source: &str, kind: Kind) -> Vec<Label> {
    vec![Label::new("source", source.to_owned()), Label::from_static_parts("kind", kind.as_str())]
}

fn with(labels: &[Label], key: &'static str, value: &'static str) -> Vec<Label> {
    let mut labels = labels.to_vec();
    labels.push(Label::from_static_parts(key, value));
    labels
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(SOURCE_VALUE, "Last value read from the source: queue depth, lag or task count.");
    describe_histogram!(SOURCE_POLL_SECONDS, Unit::Seconds, "Time one poll of the source took, failures included.");
    describe_counter!(SOURCE_ERRORS, "Failed polls, by bounded error label.");
    describe_counter!(
        SOURCE_SKIPPED,
        "Entries a poll could not read and left out (e.g. unacked messages that are not JSON)."
    );
    describe_gauge!(TARGET_DESIRED, "Replicas the last decision asked for.");
    describe_gauge!(TARGET_CURRENT, "Replicas the Deployment had at the last read (or after our write).");
    describe_counter!(TARGET_ERRORS, "Failed Kubernetes reads and writes for the target, by error label.");
    describe_counter!(DECISIONS, "Decisions, by reason label (what drove or limited the result).");
    describe_counter!(SCALE_EVENTS, "Rescales written to the Deployment, by direction.");
    describe_histogram!(LOOP_SECONDS, Unit::Seconds, "Time one cycle took: polls, decisions and writes.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label says which build is running.");
    describe_gauge!(
        TARGET_REPLICAS,
        "Replicas per capacity type (on_demand, spot): desired by the last decision, current as read."
    );
    describe_gauge!(
        SPOT_SHORTFALL,
        "Spot replicas that cannot run: Unschedulable too long, or on nodes being reclaimed."
    );
    describe_gauge!(
        TARGET_BUSY_PODS,
        "Worker pods running tasks, as last learned before a scale-down (busy-aware scale-in)."
    );
    describe_gauge!(
        CELERY_EVENT_WORKERS,
        "Celery workers heard sending task events (events = true); 0: none does (start them with -E), \
         or the event subscription is down."
    );
    describe_gauge!(KAFKA_PARTITION_LAG, "Lag of each partition of a Kafka source (with partition_metrics = true).");
    describe_gauge!(LEADER, "1 while this replica holds the lease and may write (always 1 without leader election).");
    describe_counter!(CONFIG_RELOADS, "Config reloads taken into use.");
    describe_counter!(
        CONFIG_RELOAD_ERRORS,
        "Config reloads rejected (invalid or unreadable); the running config stayed."
    );
    describe_gauge!(SPOT_FALLBACK_ACTIVE, "1 while on-demand replicas stand in for spot replicas that cannot run.");
    describe_gauge!(TARGET_ARRIVAL_RATE, "Tasks arriving per second, as the wait objective estimates them (smoothed).");
    describe_gauge!(
        TARGET_COMPLETION_RATE,
        "Tasks finishing per second: counted where the source counts them, else in flight / mean duration."
    );
    describe_gauge!(
        TARGET_PREDICTED_WAIT,
        Unit::Seconds,
        "The p95 wait the queueing model predicts with the replicas decided (+Inf: they cannot keep up)."
    );
    describe_gauge!(TARGET_UTILIZATION, "Busy slots over the ready replicas' slots (0 to 1).");
    describe_counter!(
        WATCH_ERRORS,
        "Errors of the spot watches (pods, nodes), by bounded label (gone: a 410, listed again); each resumes by itself."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_target_or_source_leaves_the_page_until_registered_again() {
        let metrics = Metrics::install();
        let (gone, kept) = (TargetLabels::new("retired", "ns", "d"), TargetLabels::new("retired-not", "ns", "d"));
        for target in [&gone, &kept] {
            metrics.register_target(target, false, false, false);
        }
        metrics.register_source("retired-source", Kind::Celery);
        let shows = |page: &str, needle: &str| page.lines().any(|l| !l.starts_with('#') && l.contains(needle));
        assert!(shows(&metrics.render(), "target=\"retired\""));

        metrics.retire_target(&gone);
        metrics.retire_source("retired-source", Kind::Celery);
        let page = metrics.render();
        assert!(!shows(&page, "target=\"retired\""), "{page}");
        assert!(!shows(&page, "source=\"retired-source\""), "{page}");
        assert!(shows(&page, "target=\"retired-not\""), "a name that only starts alike stays");

        metrics.register_target(&gone, false, false, false);
        assert!(shows(&metrics.render(), "target=\"retired\""));
    }
}
