//! `[targets.objective]`: size a target for a wait instead of a per-replica ratio.

use std::time::Duration;

use serde::Deserialize;

use super::fields::HumanDuration;
use crate::config::Problem;
use crate::policy::Objective;

#[derive(Deserialize)]
pub(super) struct RawObjective {
    max_wait: HumanDuration,
    slots: u32,
    #[serde(default)]
    task_seconds: Option<f64>,
    #[serde(default)]
    startup: Option<HumanDuration>,
    #[serde(default)]
    hysteresis: Option<f64>,
}

/// The longest wait an objective may ask for, and the longest start-up prior: a day.
const LONGEST: Duration = Duration::from_secs(24 * 3600);
/// More slots than any worker runs, and within what the queueing arithmetic handles quickly.
const MOST_SLOTS: u32 = 10_000;

pub(super) fn objective(raw: RawObjective, path: &str, problems: &mut Vec<Problem>) -> Objective {
    let mut problem = |key: &str, message: &str| problems.push(Problem::new(format!("{path}.{key}"), message));
    if raw.max_wait.0.is_zero() || raw.max_wait.0 > LONGEST {
        problem("max_wait", "must be more than 0s and at most 24h");
    }
    if raw.slots == 0 || raw.slots > MOST_SLOTS {
        problem(
            "slots",
            "must be 1 to 10000 (tasks one replica runs at once: Celery --concurrency, Airflow worker_concurrency, 1 for a Kafka consumer)",
        );
    }
    if raw.task_seconds.is_some_and(|t| !(t.is_finite() && t > 0.0 && t <= LONGEST.as_secs_f64())) {
        problem("task_seconds", "must be a number of seconds above 0 and at most a day (86400)");
    }
    if raw.startup.is_some_and(|s| s.0 > LONGEST) {
        problem("startup", "must be at most 24h");
    }
    if raw.hysteresis.is_some_and(|h| !(h.is_finite() && (0.0..=1.0).contains(&h))) {
        problem(
            "hysteresis",
            "must be a fraction from 0 to 1 (0.2 = a smaller fleet must serve 20 % more than the recent peak)",
        );
    }
    Objective {
        max_wait: raw.max_wait.0,
        slots: raw.slots,
        task_seconds: raw.task_seconds,
        startup: raw.startup.map_or(Objective::DEFAULT_STARTUP, |s| s.0),
        hysteresis: raw.hysteresis.unwrap_or(Objective::DEFAULT_HYSTERESIS),
    }
}
