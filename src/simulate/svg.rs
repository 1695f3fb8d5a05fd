//! The simulation as an SVG chart, written by hand: arrivals and backlog on top, replicas
//! (on-demand and spot stacked) below, the baseline dashed, one shared time axis.

use std::fmt::Write as _;

use super::{Run, Sample};

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
/// (top, height) of the two panels.
const TOP_PANEL: (f64, f64) = (60.0, 230.0);
const BOTTOM_PANEL: (f64, f64) = (340.0, 230.0);
const HEIGHT: f64 = 640.0;
/// At most this many columns: one per pixel or so.
const COLUMNS: usize = 1000;

const ARRIVALS: &str = "#c7d7ea";
const BACKLOG: &str = "#d62728";
const ON_DEMAND: &str = "#1f77b4";
const SPOT: &str = "#ff7f0e";
const BASELINE: &str = "#333333";

/// One column of the chart: a bucket of seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Column {
    /// Arrivals per minute over the bucket.
    arrivals_per_minute: f64,
    backlog_max: f64,
    on_demand: f64,
    spot: f64,
}

fn columns(timeline: &[Sample], length: usize) -> Vec<Column> {
    let per = length.div_ceil(COLUMNS).max(1);
    (0..length.div_ceil(per))
        .map(|c| {
            let bucket = &timeline[(c * per).min(timeline.len())..((c + 1) * per).min(timeline.len())];
            let n = bucket.len().max(1) as f64;
            Column {
                arrivals_per_minute: bucket.iter().map(|s| s.arrivals as f64).sum::<f64>() * 60.0 / n,
                backlog_max: bucket.iter().map(|s| s.backlog as f64).fold(0.0, f64::max),
                on_demand: bucket.iter().map(|s| f64::from(s.on_demand)).sum::<f64>() / n,
                spot: bucket.iter().map(|s| f64::from(s.spot)).sum::<f64>() / n,
            }
        })
        .collect()
}

/// The chart of `ours` (and `baseline`, dashed) for `title`.
pub fn render_svg(title: &str, ours: &Run, baseline: Option<&Run>) -> String {
    let length = ours.timeline.len().max(baseline.map_or(0, |b| b.timeline.len())).max(1);
    let ours_cols = columns(&ours.timeline, length);
    let base_cols = baseline.map(|b| columns(&b.timeline, length));
    let x = |i: usize, n: usize| LEFT + PLOT_WIDTH * i as f64 / n.max(1) as f64;

    let top_max = ours_cols
        .iter()
        .chain(base_cols.iter().flatten())
        .map(|c| c.backlog_max.max(c.arrivals_per_minute))
        .fold(1.0, f64::max);
    let bottom_max =
        ours_cols.iter().chain(base_cols.iter().flatten()).map(|c| c.on_demand + c.spot).fold(1.0, f64::max);
    let (top_step, bottom_step) = (nice_step(top_max / 4.0), nice_step(bottom_max / 4.0));
    let top_scale = (top_max / top_step).ceil().max(1.0) * top_step;
    let bottom_scale = (bottom_max / bottom_step).ceil().max(1.0) * bottom_step;
    let y = |panel: (f64, f64), scale: f64, v: f64| panel.0 + panel.1 * (1.0 - v / scale);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>"#, escape(title));
    axes(&mut svg, TOP_PANEL, top_scale, top_step, "tasks (arrivals per minute, backlog)");
    axes(&mut svg, BOTTOM_PANEL, bottom_scale, bottom_step, "replicas");
    time_axis(&mut svg, length as u64);

    let n = ours_cols.len();
    // Arrivals: bars in the top panel.
    let bar = PLOT_WIDTH / n.max(1) as f64;
    let _ = write!(svg, r#"<g id="arrivals" fill="{ARRIVALS}">"#);
    for (i, c) in ours_cols.iter().enumerate().filter(|(_, c)| c.arrivals_per_minute > 0.0) {
        let top = y(TOP_PANEL, top_scale, c.arrivals_per_minute);
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{top:.1}" width="{:.2}" height="{:.1}"/>"#,
            x(i, n),
            bar.max(0.5),
            TOP_PANEL.0 + TOP_PANEL.1 - top
        );
    }
    svg.push_str("</g>\n");
    // Replicas: on-demand, then spot stacked on it.
    let od: Vec<(f64, f64)> =
        ours_cols.iter().enumerate().map(|(i, c)| (x(i, n), y(BOTTOM_PANEL, bottom_scale, c.on_demand))).collect();
    let total: Vec<(f64, f64)> = ours_cols
        .iter()
        .enumerate()
        .map(|(i, c)| (x(i, n), y(BOTTOM_PANEL, bottom_scale, c.on_demand + c.spot)))
        .collect();
    let floor = BOTTOM_PANEL.0 + BOTTOM_PANEL.1;
    area(&mut svg, "replicas-spot", SPOT, &od, &total);
    let ground: Vec<(f64, f64)> = od.iter().map(|(px, _)| (*px, floor)).collect();
    area(&mut svg, "replicas-on-demand", ON_DEMAND, &ground, &od);
    // Backlog lines, and the baseline dashed.
    let backlog: Vec<(f64, f64)> =
        ours_cols.iter().enumerate().map(|(i, c)| (x(i, n), y(TOP_PANEL, top_scale, c.backlog_max))).collect();
    line(&mut svg, "backlog", BACKLOG, &backlog, None);
    if let Some(cols) = &base_cols {
        let m = cols.len();
        let b_backlog: Vec<(f64, f64)> =
            cols.iter().enumerate().map(|(i, c)| (x(i, m), y(TOP_PANEL, top_scale, c.backlog_max))).collect();
        let b_replicas: Vec<(f64, f64)> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| (x(i, m), y(BOTTOM_PANEL, bottom_scale, c.on_demand + c.spot)))
            .collect();
        line(&mut svg, "baseline-backlog", BACKLOG, &b_backlog, Some("6 4"));
        line(&mut svg, "baseline-replicas", BASELINE, &b_replicas, Some("6 4"));
    }
    legend(&mut svg, baseline.is_some());
    svg.push_str("</svg>\n");
    svg
}

fn axes(svg: &mut String, (top, height): (f64, f64), scale: f64, step: f64, label: &str) {
    let bottom = top + height;
    let _ = writeln!(svg, r##"<g class="axis" stroke="#999" stroke-width="1">"##);
    let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}"/>"#);
    let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}"/>"#, LEFT + PLOT_WIDTH);
    svg.push_str("</g>\n");
    let ticks = (scale / step).round() as u32;
    for k in 0..=ticks {
        let value = step * f64::from(k);
        let py = top + height * (1.0 - value / scale);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/>"##,
            LEFT + PLOT_WIDTH
        );
        let _ =
            writeln!(svg, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, py + 4.0, short(value));
    }
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + height / 2.0,
        escape(label)
    );
}

fn time_axis(svg: &mut String, seconds: u64) {
    const STEPS: [u64; 12] = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800];
    let step = STEPS.iter().copied().find(|s| seconds / s <= 10).unwrap_or(604800);
    let bottom = BOTTOM_PANEL.0 + BOTTOM_PANEL.1;
    let mut t = 0;
    while t <= seconds {
        let px = LEFT + PLOT_WIDTH * t as f64 / seconds.max(1) as f64;
        let _ = writeln!(svg, r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#, bottom + 18.0, clock(t));
        t += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">time since the start of the trace</text>"#,
        LEFT + PLOT_WIDTH / 2.0,
        bottom + 38.0
    );
}

type Entry = (&'static str, &'static str, Option<&'static str>);

fn legend(svg: &mut String, baseline: bool) {
    let mut top: Vec<Entry> = vec![("arrivals per minute", ARRIVALS, None), ("backlog", BACKLOG, None)];
    let mut bottom: Vec<Entry> = vec![("on-demand replicas", ON_DEMAND, None), ("spot replicas", SPOT, None)];
    if baseline {
        top.push(("KEDA + HPA backlog", BACKLOG, Some("6 4")));
        bottom.push(("KEDA + HPA replicas", BASELINE, Some("6 4")));
    }
    let _ = writeln!(svg, r#"<g id="legend">"#);
    legend_row(svg, TOP_PANEL.0 - 12.0, &top);
    legend_row(svg, BOTTOM_PANEL.0 - 12.0, &bottom);
    svg.push_str("</g>\n");
}

fn legend_row(svg: &mut String, y: f64, entries: &[Entry]) {
    for (i, (name, color, dash)) in entries.iter().enumerate() {
        let x = LEFT + i as f64 * 220.0;
        let dash = dash.map(|d| format!(r#" stroke-dasharray="{d}""#)).unwrap_or_default();
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="4"{dash}/>"#,
            x + 22.0
        );
        let _ = writeln!(svg, r#"<text x="{}" y="{}">{name}</text>"#, x + 28.0, y + 4.0);
    }
}

fn area(svg: &mut String, id: &str, color: &str, lower: &[(f64, f64)], upper: &[(f64, f64)]) {
    if upper.is_empty() {
        return;
    }
    let mut d = String::new();
    for (i, (px, py)) in upper.iter().enumerate() {
        let _ = write!(d, "{}{px:.1},{py:.1} ", if i == 0 { "M" } else { "L" });
    }
    for (px, py) in lower.iter().rev() {
        let _ = write!(d, "L{px:.1},{py:.1} ");
    }
    let _ = writeln!(svg, r#"<path id="{id}" d="{}Z" fill="{color}" fill-opacity="0.75" stroke="none"/>"#, d);
}

fn line(svg: &mut String, id: &str, color: &str, points: &[(f64, f64)], dash: Option<&str>) {
    let points: Vec<String> = points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
    let dash = dash.map(|d| format!(r#" stroke-dasharray="{d}""#)).unwrap_or_default();
    let _ = writeln!(
        svg,
        r#"<polyline id="{id}" points="{}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>"#,
        points.join(" ")
    );
}

/// The smallest of 1, 2, 5 × 10^k at or above `v`: a tick step.
fn nice_step(v: f64) -> f64 {
    let v = v.max(1.0);
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= v).unwrap_or(10.0 * magnitude)
}

fn short(v: f64) -> String {
    match v {
        v if v >= 1_000_000.0 => format!("{:.1}M", v / 1e6),
        v if v >= 10_000.0 => format!("{:.0}k", v / 1e3),
        v if v >= 1_000.0 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// `h:mm`, with days when the trace is longer than one.
fn clock(t: u64) -> String {
    let (days, rest) = (t / 86400, t % 86400);
    let (h, m) = (rest / 3600, rest % 3600 / 60);
    if days > 0 { format!("{days}d {h}:{m:02}") } else { format!("{h}:{m:02}") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
