//! `[targets.simulation]`: how the workload behaves, for `queue-autoscaler simulate`.

use std::time::Duration;

use serde::Deserialize;

use super::fields::HumanDuration;
use crate::config::{Problem, Simulation};

#[derive(Deserialize)]
pub(super) struct RawSimulation {
    throughput_per_replica: f64,
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

pub(super) fn simulation(raw: RawSimulation, path: &str, problems: &mut Vec<Problem>) -> Simulation {
    let mut check = |key: &str, value: f64, positive: bool| {
        let fine = value.is_finite() && if positive { value > 0.0 } else { value >= 0.0 };
        if !fine {
            let bound = if positive { "above 0" } else { "0 or above" };
            problems.push(Problem::new(format!("{path}.{key}"), format!("must be a number {bound}")));
        }
    };
    check("throughput_per_replica", raw.throughput_per_replica, true);
    check("spot_interruption_rate", raw.spot_interruption_rate, false);
    check("on_demand_price", raw.on_demand_price, false);
    check("spot_price", raw.spot_price, false);
    Simulation {
        throughput_per_replica: raw.throughput_per_replica,
        startup_delay: raw.startup_delay.0,
        spot_interruption_rate: raw.spot_interruption_rate,
        on_demand_price: raw.on_demand_price,
        spot_price: raw.spot_price,
    }
}
