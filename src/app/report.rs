//! What a cycle did for each target, as `once` prints it (table or JSON).

use std::fmt::Write as _;

use serde::Serialize;

use super::Sources;
use super::cycle::Readings;
use super::plan::Plan;
use crate::config::Target;
use crate::k8s::KubeError;
use crate::k8s::spot::SpotHealth;
use crate::policy::spot::Placement;
use crate::policy::{Decision, Prediction};
use crate::source::Kind;
use crate::source::celery::EventsStatus;
use crate::source::kafka::lag::PartitionLag;

/// One target's outcome. Field names are a contract: scripts read `once --output json`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub namespace: String,
    /// The workload's kind: `Deployment` or `StatefulSet`.
    pub kind: &'static str,
    /// The workload's name (of either kind; the key keeps its first name for scripts).
    pub deployment: String,
    /// `spec.replicas` as read (on-demand and spot twin together); `null` when it could not be read.
    pub current: Option<u32>,
    /// The total the policy decided (stand-ins for failing spot replicas come on top, in `split`).
    pub desired: u32,
    /// Where the replicas go: all on-demand without a spot twin.
    pub split: SplitReport,
    /// Spot health and fallback, for a target with a spot twin.
    pub spot: Option<SpotReport>,
    /// Worker pods running tasks, when busy-aware scale-in asked this cycle.
    pub busy_pods: Option<u32>,
    /// Human reason, e.g. "celery_default=431 → 27 wanted, capped by scale-up policy pods=4/15s → 8".
    pub reason: String,
    /// Stable reason label, as in the `queue_autoscaler_decisions_total` metric.
    pub reason_label: &'static str,
    /// Whether this cycle wrote the workload.
    pub written: bool,
    /// Why the workload could not be read, if it could not.
    pub kube_error: Option<String>,
    pub triggers: Vec<TriggerReport>,
    /// With a wait objective: the estimates used and the predicted wait (`null` otherwise).
    pub objective: Option<ObjectiveReport>,
}

/// What the wait objective saw and predicted, for the trigger that asked for the most replicas.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveReport {
    /// The trigger's source.
    pub source: String,
    pub max_wait_seconds: f64,
    pub slots: u32,
    /// Tasks arriving per second (smoothed), and the highest of the scale-down window.
    pub arrival_rate: f64,
    pub arrival_rate_peak: f64,
    /// How the arrival rate was estimated: `counted` (an arrivals counter), `balance` (what is
    /// waiting, running and finished), `occupancy` (in flight / mean duration), `depth` (the
    /// queue's change and the ready slots).
    pub arrival_estimate: &'static str,
    pub completion_rate: Option<f64>,
    /// Mean seconds per task (measured, or the prior); `null` when unknown.
    pub task_seconds: Option<f64>,
    pub backlog: f64,
    /// `null` where the source cannot see the work in flight (Kafka).
    pub in_flight: Option<f64>,
    pub ready: u32,
    pub startup_seconds: f64,
    /// The replicas the objective asks for, and the p95 wait predicted with them (`null`: they
    /// cannot keep up).
    pub replicas: u32,
    pub predicted_wait_seconds: Option<f64>,
    pub utilization: Option<f64>,
    /// Whether the rates have been watched long enough to rest a scale-down on them.
    pub settled: bool,
}

impl ObjectiveReport {
    fn new(source: &str, p: &Prediction) -> Self {
        let e = &p.estimate;
        ObjectiveReport {
            source: source.to_owned(),
            max_wait_seconds: p.max_wait.as_secs_f64(),
            slots: p.slots,
            arrival_rate: e.arrival_rate,
            arrival_rate_peak: e.arrival_rate_high,
            arrival_estimate: e.method.as_str(),
            completion_rate: p.completion_rate(),
            task_seconds: e.task_seconds,
            backlog: e.backlog,
            in_flight: e.in_flight,
            ready: p.ready,
            startup_seconds: p.startup.as_secs_f64(),
            replicas: p.replicas,
            predicted_wait_seconds: p.predicted_wait.is_finite().then_some(p.predicted_wait),
            utilization: p.utilization(),
            settled: e.settled,
        }
    }
}

/// One trigger's reading in a report.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerReport {
    pub source: String,
    pub kind: &'static str,
    /// `null` when the poll failed.
    pub value: Option<f64>,
    pub error: Option<String>,
    /// `ceil(value / per_replica)` (within a Kafka group's partitions); `null` when the poll failed.
    pub recommended: Option<u32>,
    /// Per partition, for a Kafka source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PartitionLag>>,
    /// For a Celery source with `events = true`: the subscription and the workers heard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsStatus>,
}

/// Replicas per capacity type.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SplitReport {
    pub on_demand: u32,
    pub spot: u32,
}

/// A spot twin's state in a report.
#[derive(Debug, Clone, Serialize)]
pub struct SpotReport {
    /// Whether the pod and node watches had listed (without them the shortfall is taken as 0).
    pub health_known: bool,
    /// Spot pods Pending as Unschedulable past `unschedulable_after`.
    pub unschedulable: u32,
    /// Spot pods on nodes being reclaimed or cordoned.
    pub reclaimed: u32,
    /// The shortfall counted (at most the spot share).
    pub shortfall: u32,
    /// On-demand replicas standing in for spot ones (included in `split.on_demand`).
    pub extra_on_demand: u32,
    pub fallback_active: bool,
}

impl SpotReport {
    fn new(placement: &Placement, health: Option<SpotHealth>) -> Self {
        let health_known = health.is_some();
        let health = health.unwrap_or_default();
        SpotReport {
            health_known,
            unschedulable: health.unschedulable,
            reclaimed: health.reclaimed,
            shortfall: placement.shortfall,
            extra_on_demand: placement.extra,
            fallback_active: placement.fallback_active(),
        }
    }
}

impl TargetReport {
    /// The report of one target's plan, once applied (`written`).
    pub(super) fn new(
        spec: &Target,
        plan: &Plan,
        readings: &Readings,
        sources: &Sources,
        written: bool,
        kube_error: Option<&KubeError>,
    ) -> Self {
        let decision = &plan.decision;
        let triggers = spec
            .policy
            .triggers
            .iter()
            .zip(&decision.recommended)
            .map(|(trigger, recommended)| {
                let reading = readings.get(&trigger.source);
                let kind = sources.get(&trigger.source).map(|s| s.kind());
                let partitions = match (kind, reading.and_then(|r| r.as_ref().ok())) {
                    (Some(Kind::Kafka), Some(r)) => Some(r.partitions.clone()),
                    _ => None,
                };
                TriggerReport {
                    source: trigger.source.clone(),
                    kind: kind.map_or("unknown", Kind::as_str),
                    value: reading.and_then(|r| r.as_ref().ok()).map(|r| r.value),
                    error: reading.and_then(|r| r.as_ref().err()).map(ToString::to_string),
                    recommended: *recommended,
                    partitions,
                    events: reading.and_then(|r| r.as_ref().ok()).and_then(|r| r.events),
                }
            })
            .collect();
        let split = plan.placement.split;
        TargetReport {
            target: spec.name.clone(),
            namespace: spec.namespace.clone(),
            kind: spec.kind.as_str(),
            deployment: spec.workload.clone(),
            current: plan.current.map(|c| c.total()),
            desired: decision.replicas,
            split: SplitReport { on_demand: split.on_demand, spot: split.spot },
            spot: spec.spot.as_ref().map(|_| SpotReport::new(&plan.placement, plan.spot_health)),
            busy_pods: plan.busy_pods,
            reason: plan.note.clone(),
            reason_label: decision.reason.label(),
            written,
            kube_error: kube_error.map(ToString::to_string),
            triggers,
            objective: objective_report(spec, decision),
        }
    }
}

fn objective_report(spec: &Target, decision: &Decision) -> Option<ObjectiveReport> {
    let (index, prediction) = decision
        .predictions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .rev()
        .max_by_key(|(_, p)| p.replicas)?;
    Some(ObjectiveReport::new(&spec.policy.triggers[index].source, &prediction))
}

/// A plain-text table: one line per target, one indented line per trigger.
pub fn render_table(reports: &[TargetReport]) -> String {
    let header = ["TARGET", "NAMESPACE", "WORKLOAD", "CURRENT", "DESIRED", "REASON"];
    let rows: Vec<[String; 6]> = reports
        .iter()
        .map(|r| {
            [
                r.target.clone(),
                r.namespace.clone(),
                format!("{}/{}", r.kind.to_lowercase(), r.deployment),
                r.current.map_or("-".to_owned(), |c| c.to_string()),
                r.desired.to_string(),
                r.reason.clone(),
            ]
        })
        .collect();
    let widths: Vec<usize> =
        (0..5).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 6]| {
        for (i, cell) in cells.iter().enumerate().take(5) {
            let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
        }
        let _ = writeln!(out, "{}", cells[5]);
    };
    line(&mut out, header);
    for (report, row) in reports.iter().zip(&rows) {
        line(&mut out, [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
        for t in &report.triggers {
            let value = t.value.map_or("-".to_owned(), |v| v.to_string());
            let recommended = t.recommended.map_or("-".to_owned(), |r| r.to_string());
            let _ = write!(out, "  {} ({}): value {value}, recommends {recommended}", t.source, t.kind);
            if let Some(error) = &t.error {
                let _ = write!(out, ", error: {error}");
            }
            if let Some(events) = &t.events {
                let _ = write!(out, "; {events}");
            }
            out.push('\n');
        }
        if let Some(spot) = &report.spot {
            let _ = writeln!(
                out,
                "  split: {} on-demand + {} spot (spot shortfall {}, {} on-demand standing in)",
                report.split.on_demand, report.split.spot, spot.shortfall, spot.extra_on_demand
            );
        }
        if let Some(error) = &report.kube_error {
            let _ = writeln!(out, "  {}: {error}", report.kind.to_lowercase());
        }
    }
    out
}
