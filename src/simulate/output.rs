//! A simulation's results as a table, JSON, and a per-second CSV timeline.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Run, Summary};

/// What ours is compared with: KEDA's defaults, or KEDA tuned for the objective.
#[derive(Debug, Clone, Copy)]
pub struct Compared<'a> {
    /// `keda` or `keda-tuned`.
    pub name: &'static str,
    pub summary: &'a Summary,
    /// KEDA's `per_replica` setting in the run.
    pub per_replica: Option<f64>,
    /// For `keda-tuned`: whether any setting kept the p95 wait within the objective.
    pub meets: Option<bool>,
}

impl Compared<'_> {
    fn heading(&self) -> String {
        match (self.name, self.per_replica) {
            ("keda-tuned", Some(p)) => format!("KEDA tuned ({} /replica)", short(p)),
            _ => "KEDA + HPA defaults".to_owned(),
        }
    }
}

/// A table row: its name, and how to show a summary's value.
type Row = (&'static str, fn(&Summary) -> String);

/// Our run and, if asked for, the baseline's, side by side.
pub fn render_table(target: &str, trace: &str, ours: &Summary, baseline: Option<&Compared>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "simulate: target {target}, trace {trace} ({} s, {} tasks)", ours.seconds, group(ours.tasks));
    let _ = write!(out, "{:<28}{:>20}", "", "queue-autoscaler");
    if let Some(b) = baseline {
        let _ = write!(out, "{:>28}", b.heading());
    }
    out.push('\n');
    let rows: [Row; 15] = [
        ("replica-hours", |s| format!("{:.1}", s.replica_hours())),
        ("replica-hours on-demand", |s| format!("{:.1}", s.replica_hours_on_demand)),
        ("replica-hours spot", |s| format!("{:.1}", s.replica_hours_spot)),
        ("cost", |s| format!("{:.2}", s.cost)),
        ("cost all on-demand", |s| format!("{:.2}", s.cost_all_on_demand)),
        ("utilization", |s| format!("{:.2}", s.utilization)),
        ("wait p50", |s| format!("{} s", s.wait_p50)),
        ("wait p95", |s| format!("{} s", s.wait_p95)),
        ("wait max", |s| format!("{} s", s.wait_max)),
        ("peak backlog", |s| group(s.peak_backlog)),
        ("rescales", |s| group(s.rescales)),
        ("spot interruptions", |s| group(s.spot_interruptions)),
        ("arrival-rate error", |s| s.arrival_rate_error.map_or("-".to_owned(), |e| format!("{:.0} %", e * 100.0))),
        ("simulated seconds", |s| group(s.seconds)),
        ("tasks unfinished", |s| group(s.unfinished)),
    ];
    for (name, value) in rows {
        let _ = write!(out, "{name:<28}{:>20}", value(ours));
        if let Some(b) = baseline {
            let _ = write!(out, "{:>28}", value(b.summary));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&closing_line(ours, baseline));
    out.push('\n');
    out
}

/// The two effects apart: the decision (replica-hours against the baseline, which gets the same
/// placement) and the spot placement (cost against the same replica-hours all on-demand).
pub fn closing_line(ours: &Summary, baseline: Option<&Compared>) -> String {
    let mut parts = Vec::new();
    if let Some(b) = baseline {
        let mut policy = format!(
            "policy: {} {}'s replica-hours (p95 wait {} s vs {} s, utilization {:.2} vs {:.2})",
            ratio(ours.replica_hours(), b.summary.replica_hours()),
            if b.name == "keda-tuned" { "tuned KEDA" } else { "KEDA" },
            ours.wait_p95,
            b.summary.wait_p95,
            ours.utilization,
            b.summary.utilization,
        );
        if b.meets == Some(false) {
            policy.push_str("; no KEDA setting met the objective, the closest is shown");
        }
        parts.push(policy);
    }
    if ours.replica_hours_spot > 0.0 {
        parts.push(format!("spot placement: cost {} all on-demand", ratio(ours.cost, ours.cost_all_on_demand)));
    }
    if parts.is_empty() { "no baseline, no spot placement".to_owned() } else { parts.join("; ") }
}

fn ratio(ours: f64, baseline: f64) -> String {
    if baseline > 0.0 { format!("{:.2}×", ours / baseline) } else { "n/a×".to_owned() }
}

/// `24.0` → `24`, `0.5` → `0.5`.
fn short(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn summary_value(s: &Summary) -> Value {
    json!({
        "seconds": s.seconds,
        "tasks": s.tasks,
        "unfinished": s.unfinished,
        "replica_hours": { "on_demand": s.replica_hours_on_demand, "spot": s.replica_hours_spot },
        "cost": s.cost,
        "cost_all_on_demand": s.cost_all_on_demand,
        "utilization": s.utilization,
        "wait_seconds": { "p50": s.wait_p50, "p95": s.wait_p95, "max": s.wait_max },
        "peak_backlog": s.peak_backlog,
        "rescales": s.rescales,
        "spot_interruptions": s.spot_interruptions,
        "arrival_rate_error": s.arrival_rate_error,
    })
}

/// `{"target", "trace", "ours": {...}, "baseline": {..., "kind", "per_replica"} | null, "effects"}`.
pub fn summary_json(target: &str, trace: &str, ours: &Summary, baseline: Option<&Compared>) -> Value {
    let baseline = baseline.map(|b| {
        let mut value = summary_value(b.summary);
        value["kind"] = json!(b.name);
        value["per_replica"] = json!(b.per_replica);
        value["meets_max_wait"] = json!(b.meets);
        value
    });
    json!({ "target": target, "trace": trace, "ours": summary_value(ours), "baseline": baseline })
}

/// The per-second timeline; the baseline's columns when it ran.
pub fn render_csv(ours: &Run, baseline: Option<&Run>) -> String {
    let mut out = String::from("second,arrivals,backlog,on_demand,spot,ready");
    if baseline.is_some() {
        out.push_str(",baseline_backlog,baseline_replicas,baseline_ready");
    }
    out.push_str(",running,arrival_estimate");
    if baseline.is_some() {
        out.push_str(",baseline_running");
    }
    out.push('\n');
    let length = ours.timeline.len().max(baseline.map_or(0, |b| b.timeline.len()));
    for t in 0..length {
        let s = ours.timeline.get(t).copied().unwrap_or_default();
        let b = baseline.map(|b| b.timeline.get(t).copied().unwrap_or_default());
        let _ = write!(out, "{t},{},{},{},{},{}", s.arrivals, s.backlog, s.on_demand, s.spot, s.ready);
        if let Some(b) = b {
            let _ = write!(out, ",{},{},{}", b.backlog, b.on_demand + b.spot, b.ready);
        }
        let estimate = s.arrival_estimate.map_or(String::new(), |e| format!("{e:.3}"));
        let _ = write!(out, ",{},{estimate}", s.running);
        if let Some(b) = b {
            let _ = write!(out, ",{}", b.running);
        }
        out.push('\n');
    }
    out
}
