//! What a cycle did for each target, as `once` prints it (table or JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::cycle::Readings;
use crate::config::Target;
use crate::policy::Decision;
use crate::source::Source;
use crate::target::TargetError;

/// One target's outcome. Field names are a contract: scripts read `once --output json`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub namespace: String,
    pub deployment: String,
    /// `spec.replicas` as read; `null` when the Deployment could not be read.
    pub current: Option<u32>,
    pub desired: u32,
    /// Human reason, e.g. "celery_default=431 → 27 wanted, capped by scale-up policy pods=4/15s → 8".
    pub reason: String,
    /// Stable reason label, as in the `queue_autoscaler_decisions_total` metric.
    pub reason_label: &'static str,
    /// Whether this cycle wrote the Deployment.
    pub written: bool,
    /// Why the Deployment could not be read, if it could not.
    pub kube_error: Option<String>,
    pub triggers: Vec<TriggerReport>,
}

/// One trigger's reading in a report.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerReport {
    pub source: String,
    pub kind: &'static str,
    /// `null` when the poll failed.
    pub value: Option<f64>,
    pub error: Option<String>,
    /// `ceil(value / per_replica)`; `null` when the poll failed.
    pub recommended: Option<u32>,
}

impl TargetReport {
    pub(super) fn new(
        spec: &Target,
        current: Option<u32>,
        decision: &Decision,
        written: bool,
        kube_error: Option<&TargetError>,
        readings: &Readings,
        sources: &BTreeMap<String, Source>,
    ) -> Self {
        let triggers = spec
            .policy
            .triggers
            .iter()
            .zip(&decision.recommended)
            .map(|(trigger, recommended)| {
                let reading = readings.get(&trigger.source);
                TriggerReport {
                    source: trigger.source.clone(),
                    kind: sources.get(&trigger.source).map_or("unknown", |s| s.kind().as_str()),
                    value: reading.and_then(|r| r.as_ref().ok()).map(|r| r.value),
                    error: reading.and_then(|r| r.as_ref().err()).map(ToString::to_string),
                    recommended: *recommended,
                }
            })
            .collect();
        TargetReport {
            target: spec.name.clone(),
            namespace: spec.namespace.clone(),
            deployment: spec.deployment.clone(),
            current,
            desired: decision.replicas,
            reason: decision.reason.to_string(),
            reason_label: decision.reason.label(),
            written,
            kube_error: kube_error.map(ToString::to_string),
            triggers,
        }
    }
}

/// A plain-text table: one line per target, one indented line per trigger.
pub fn render_table(reports: &[TargetReport]) -> String {
    let header = ["TARGET", "NAMESPACE", "DEPLOYMENT", "CURRENT", "DESIRED", "REASON"];
    let rows: Vec<[String; 6]> = reports
        .iter()
        .map(|r| {
            [
                r.target.clone(),
                r.namespace.clone(),
                r.deployment.clone(),
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
            out.push('\n');
        }
        if let Some(error) = &report.kube_error {
            let _ = writeln!(out, "  deployment: {error}");
        }
    }
    out
}
