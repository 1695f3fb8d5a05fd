//! `[targets.simulation]`: how the workload behaves, for `queue-autoscaler simulate`.

use std::time::Duration;

use serde::Deserialize;

use super::fields::HumanDuration;
use crate::config::{Problem, Simulation};

#[derive(Deserialize)]
pub(super) struct RawSimulation {
    #[serde(default)]
    slots: Option<u32>,
    #[serde(default)]
    service_seconds: Option<f64>,
    /// The first model's only rate: tasks per second one replica completes. Still accepted:
    /// `slots / throughput_per_replica` seconds a task.
    #[serde(default)]
    throughput_per_replica: Option<f64>,
    #[serde(default = "default_startup_delay")]
    startup_delay: HumanDuration,
    #[serde(default)]
    spot_interruption_rate: f64,
    #[serde(default)]
    on_demand_price: f64,
    #[serde(default)]
    spot_price: f64,
}

fn default_startup_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// `slots` defaults to the objective's (1 without one).
pub(super) fn simulation(
    raw: RawSimulation,
    objective_slots: Option<u32>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Simulation {
    let mut problem = |key: &str, message: &str| problems.push(Problem::new(format!("{path}.{key}"), message));
    let finite = |value: f64, positive: bool| value.is_finite() && if positive { value > 0.0 } else { value >= 0.0 };
    let slots = raw.slots.or(objective_slots).unwrap_or(1);
    if slots == 0 || slots > 10_000 {
        problem("slots", "must be 1 to 10000 (tasks one replica runs at once)");
    }
    let service_seconds = match (raw.service_seconds, raw.throughput_per_replica) {
        (Some(_), Some(_)) => {
            problem(
                "throughput_per_replica",
                "give service_seconds (with slots), or the older throughput_per_replica, not both",
            );
            1.0
        }
        (Some(seconds), None) => seconds,
        (None, Some(throughput)) if finite(throughput, true) => f64::from(slots) / throughput,
        (None, Some(_)) => {
            problem("throughput_per_replica", "must be a number above 0");
            1.0
        }
        (None, None) => {
            problem(
                "service_seconds",
                "required key is missing: the mean seconds a task runs (with slots, the tasks one replica runs at once)",
            );
            1.0
        }
    };
    if !(finite(service_seconds, true) && service_seconds <= 86_400.0) {
        problem("service_seconds", "must be a number of seconds above 0 and at most a day (86400)");
    }
    if raw.startup_delay.0 > Duration::from_secs(24 * 3600) {
        problem("startup_delay", "must be at most 24h");
    }
    for (key, value) in [
        ("spot_interruption_rate", raw.spot_interruption_rate),
        ("on_demand_price", raw.on_demand_price),
        ("spot_price", raw.spot_price),
    ] {
        if !finite(value, false) {
            problem(key, "must be a number 0 or above");
        }
    }
    Simulation {
        slots,
        service_seconds,
        startup_delay: raw.startup_delay.0,
        spot_interruption_rate: raw.spot_interruption_rate,
        on_demand_price: raw.on_demand_price,
        spot_price: raw.spot_price,
    }
}
