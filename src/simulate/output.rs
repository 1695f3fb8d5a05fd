//! A simulation's results as a table, JSON, and a per-second CSV timeline.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Run, Summary};

/// A table row: its name, and how to show a summary's value.
type Row = (&'static str, fn(&Summary) -> String);

/// Our run and, if asked for, the baseline's, side by side.
pub fn render_table(target: &str, trace: &str, ours: &Summary, baseline: Option<&Summary>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "simulate: target {target}, trace {trace} ({} s, {} tasks)", ours.seconds, group(ours.tasks));
    let _ = write!(out, "{:<28}{:>20}", "", "queue-autoscaler");
    if baseline.is_some() {
        let _ = write!(out, "{:>24}", "KEDA + HPA defaults");
    }
    out.push('\n');
    let rows: [Row; 11] = [
        ("replica-hours on-demand", |s| format!("{:.1}", s.replica_hours_on_demand)),
        ("replica-hours spot", |s| format!("{:.1}", s.replica_hours_spot)),
        ("cost", |s| format!("{:.2}", s.cost)),
        ("wait p50", |s| format!("{} s", s.wait_p50)),
        ("wait p95", |s| format!("{} s", s.wait_p95)),
        ("wait max", |s| format!("{} s", s.wait_max)),
        ("peak backlog", |s| group(s.peak_backlog)),
        ("rescales", |s| group(s.rescales)),
        ("spot interruptions", |s| group(s.spot_interruptions)),
        ("simulated seconds", |s| group(s.seconds)),
        ("tasks unfinished", |s| group(s.unfinished)),
    ];
    for (name, value) in rows {
        let _ = write!(out, "{name:<28}{:>20}", value(ours));
        if let Some(baseline) = baseline {
            let _ = write!(out, "{:>24}", value(baseline));
        }
        out.push('\n');
    }
    if let Some(b) = baseline {
        let _ = writeln!(
            out,
            "\nvs KEDA: cost {}, p95 wait {} s vs {} s, {} vs {} rescales",
            ratio(ours.cost, b.cost),
            ours.wait_p95,
            b.wait_p95,
            ours.rescales,
            b.rescales
        );
    }
    out
}

fn ratio(ours: f64, baseline: f64) -> String {
    if baseline > 0.0 { format!("{:.0}% of the baseline's", 100.0 * ours / baseline) } else { "n/a".to_owned() }
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
        "wait_seconds": { "p50": s.wait_p50, "p95": s.wait_p95, "max": s.wait_max },
        "peak_backlog": s.peak_backlog,
        "rescales": s.rescales,
        "spot_interruptions": s.spot_interruptions,
    })
}

/// `{"target", "trace", "ours": {...}, "baseline": {...} | null}`.
pub fn summary_json(target: &str, trace: &str, ours: &Summary, baseline: Option<&Summary>) -> Value {
    json!({ "target": target, "trace": trace, "ours": summary_value(ours), "baseline": baseline.map(summary_value) })
}

/// The per-second timeline; the baseline's columns when it ran.
pub fn render_csv(ours: &Run, baseline: Option<&Run>) -> String {
    let mut out = String::from("second,arrivals,backlog,on_demand,spot,ready");
    if baseline.is_some() {
        out.push_str(",baseline_backlog,baseline_replicas,baseline_ready");
    }
    out.push('\n');
    let length = ours.timeline.len().max(baseline.map_or(0, |b| b.timeline.len()));
    for t in 0..length {
        let s = ours.timeline.get(t).copied().unwrap_or_default();
        let _ = write!(out, "{t},{},{},{},{},{}", s.arrivals, s.backlog, s.on_demand, s.spot, s.ready);
        if let Some(b) = baseline {
            let b = b.timeline.get(t).copied().unwrap_or_default();
            let _ = write!(out, ",{},{},{}", b.backlog, b.on_demand + b.spot, b.ready);
        }
        out.push('\n');
    }
    out
}
