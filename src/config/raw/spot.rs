//! `[targets.spot]`: the spot twin of a target's Deployment and how replicas are split.

use std::time::Duration;

use serde::Deserialize;

use super::fields::{HumanDuration, check_duration};
use crate::config::{Problem, SpotTarget};
use crate::policy::spot::SpotPolicy;

#[derive(Deserialize)]
pub(super) struct RawSpot {
    deployment: String,
    on_demand_base: u32,
    on_demand_percentage: u32,
    #[serde(default = "default_unschedulable_after")]
    unschedulable_after: HumanDuration,
    #[serde(default = "default_retry_spot_after")]
    retry_spot_after: HumanDuration,
    #[serde(default)]
    extra_taints: Vec<String>,
}

fn default_unschedulable_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(180))
}

fn default_retry_spot_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}

impl RawSpot {
    pub(super) fn deployment(&self) -> &str {
        &self.deployment
    }
}

pub(super) fn spot(raw: RawSpot, target_deployment: &str, path: &str, problems: &mut Vec<Problem>) -> SpotTarget {
    let mut problem = |key: &str, message: String| problems.push(Problem::new(format!("{path}.{key}"), message));
    if raw.deployment.is_empty() {
        problem("deployment", "must not be empty".to_owned());
    }
    if raw.deployment == target_deployment {
        problem("deployment", "must be the spot twin, not the target's own (on-demand) Deployment".to_owned());
    }
    if raw.on_demand_percentage > 100 {
        problem("on_demand_percentage", format!("{} is not a percentage (0 to 100)", raw.on_demand_percentage));
    }
    let day = Duration::from_secs(24 * 3600);
    check_duration(
        raw.unschedulable_after.0,
        Duration::from_secs(1),
        day,
        &format!("{path}.unschedulable_after"),
        problems,
    );
    check_duration(raw.retry_spot_after.0, Duration::ZERO, day, &format!("{path}.retry_spot_after"), problems);
    SpotTarget {
        deployment: raw.deployment,
        policy: SpotPolicy {
            on_demand_base: raw.on_demand_base,
            on_demand_percentage: raw.on_demand_percentage,
            retry_spot_after: raw.retry_spot_after.0,
        },
        unschedulable_after: raw.unschedulable_after.0,
        extra_taints: raw.extra_taints,
    }
}
