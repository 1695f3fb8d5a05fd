//! Spot-aware placement: split a target's total between its on-demand Deployment and its spot
//! twin, and move the spot replicas that cannot run to on-demand until spot recovers.
//!
//! The split is AWS Auto Scaling's MixedInstancesPolicy arithmetic (InstancesDistribution,
//! awsdocs/amazon-ec2-auto-scaling-user-guide `ec2-auto-scaling-mixed-instances-groups.md`): the first `on_demand_base` replicas are on-demand; of the
//! replicas above the base, `on_demand_percentage` percent are on-demand, rounded up "in favor of
//! On-Demand", and the rest spot.

use std::fmt;
use std::time::Duration;

/// How a target spreads its replicas over on-demand and spot capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotPolicy {
    pub on_demand_base: u32,
    /// 0–100.
    pub on_demand_percentage: u32,
    /// Without any shortfall for this long, extra on-demand replicas start moving back to spot.
    pub retry_spot_after: Duration,
}

/// Replicas per capacity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Split {
    pub on_demand: u32,
    pub spot: u32,
}

impl Split {
    pub fn total(&self) -> u32 {
        self.on_demand + self.spot
    }
}

/// The AWS split of `total` replicas: `min(D, base) + ceil(max(D − base, 0) × pct / 100)`
/// on-demand, the rest spot.
pub fn split(total: u32, base: u32, percentage: u32) -> Split {
    let base_part = total.min(base);
    let above = u64::from(total - base_part);
    let on_demand_above = (above * u64::from(percentage.min(100))).div_ceil(100);
    // on_demand_above ≤ above ≤ total, so the conversion back to u32 cannot fail.
    let on_demand = base_part + u32::try_from(on_demand_above).unwrap_or(0);
    Split { on_demand, spot: total - on_demand }
}

/// What placement remembers between decisions.
#[derive(Debug, Clone, Default)]
pub struct SpotHistory {
    /// On-demand replicas added to cover spot replicas that cannot run.
    extra: u32,
    /// When a shortfall was last seen.
    last_shortfall: Option<Duration>,
}

impl SpotHistory {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Where a target's replicas go this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// What the Deployments should have: the split plus `extra` on-demand replicas.
    pub split: Split,
    /// On-demand replicas standing in for spot replicas that cannot run.
    pub extra: u32,
    /// Spot replicas seen unable to run this time (capped at the spot share).
    pub shortfall: u32,
    /// What changed this time, if anything worth an Event.
    pub change: Option<SpotChange>,
}

/// A move of work between capacity types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpotChange {
    /// Spot replicas cannot run: this many more on-demand replicas (now `extra` in all).
    Fallback { added: u32, extra: u32 },
    /// Spot has been healthy long enough: this many replicas move back (`extra` remain).
    ShiftBack { moved: u32, extra: u32 },
}

impl Placement {
    pub fn fallback_active(&self) -> bool {
        self.extra > 0
    }
}

/// Places `total` replicas (already within `[min, max]`), given how many spot replicas cannot
/// run now. Extra on-demand replicas cover the shortfall, never past `max` in total; spot keeps its
/// share so capacity can come back. After `retry_spot_after` without a shortfall the extra goes
/// back step by step, half of it per decision (at least one), so a spot pool that fails again
/// is caught before all of it has moved.
pub fn place(
    policy: &SpotPolicy,
    max: u32,
    total: u32,
    shortfall: u32,
    history: &mut SpotHistory,
    now: Duration,
) -> Placement {
    let base = split(total, policy.on_demand_base, policy.on_demand_percentage);
    let shortfall = shortfall.min(base.spot);
    let before = history.extra;
    let mut stepped = false;
    if shortfall > 0 {
        history.last_shortfall = Some(now);
        history.extra = history.extra.max(shortfall);
    } else if history.extra > 0 && history.last_shortfall.is_none_or(|at| at + policy.retry_spot_after <= now) {
        history.extra -= (history.extra / 2).max(1);
        stepped = true;
    }
    // Never more extra than spot replicas to stand in for, nor past max in total.
    history.extra = history.extra.min(base.spot).min(max.saturating_sub(total));
    let change = if history.extra > before {
        Some(SpotChange::Fallback { added: history.extra - before, extra: history.extra })
    } else if stepped && history.extra < before {
        Some(SpotChange::ShiftBack { moved: before - history.extra, extra: history.extra })
    } else {
        None
    };
    let split = Split { on_demand: base.on_demand + history.extra, spot: base.spot };
    Placement { split, extra: history.extra, shortfall, change }
}

impl fmt::Display for SpotChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpotChange::Fallback { added, extra } => {
                write!(f, "spot replicas cannot run: +{added} on-demand ({extra} on-demand standing in for spot)")
            }
            SpotChange::ShiftBack { moved, extra } => {
                write!(f, "spot healthy again: {moved} replica(s) back to spot ({extra} extra on-demand left)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_published_examples() {
        // awsdocs ec2-auto-scaling-mixed-instances-groups: base 10, 50% above it.
        for (total, on_demand, spot) in [(10, 10, 0), (20, 15, 5), (30, 20, 10), (40, 25, 15)] {
            assert_eq!(split(total, 10, 50), Split { on_demand, spot }, "D = {total}");
        }
        assert_eq!(split(10, 0, 60), Split { on_demand: 6, spot: 4 });
        assert_eq!(split(10, 12, 0), Split { on_demand: 10, spot: 0 });
        assert_eq!(split(20, 12, 0), Split { on_demand: 12, spot: 8 });
    }

    #[test]
    fn fractions_round_up_in_favor_of_on_demand() {
        assert_eq!(split(7, 2, 25), Split { on_demand: 4, spot: 3 }, "the issue's example: 2 + ceil(1.25)");
        assert_eq!(split(3, 0, 1), Split { on_demand: 1, spot: 2 });
    }

    #[test]
    fn edge_cases() {
        assert_eq!(split(1, 2, 25), Split { on_demand: 1, spot: 0 }, "below the base: all on-demand");
        assert_eq!(split(0, 2, 25), Split { on_demand: 0, spot: 0 });
        assert_eq!(split(9, 1, 0), Split { on_demand: 1, spot: 8 }, "0%: all spot above the base");
        assert_eq!(split(9, 1, 100), Split { on_demand: 9, spot: 0 }, "100%: all on-demand");
        assert_eq!(split(9, 1, 250), Split { on_demand: 9, spot: 0 }, "over 100% is 100%");
        assert_eq!(split(u32::MAX, 0, 50).total(), u32::MAX, "no overflow");
    }

    fn policy() -> SpotPolicy {
        SpotPolicy { on_demand_base: 2, on_demand_percentage: 25, retry_spot_after: Duration::from_secs(600) }
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_shortfall_moves_to_on_demand_and_spot_keeps_its_share() {
        let mut history = SpotHistory::new();
        let p = place(&policy(), 20, 7, 0, &mut history, at(0));
        assert_eq!((p.split, p.change), (Split { on_demand: 4, spot: 3 }, None));
        let p = place(&policy(), 20, 7, 2, &mut history, at(10));
        assert_eq!(p.split, Split { on_demand: 6, spot: 3 });
        assert_eq!(p.change, Some(SpotChange::Fallback { added: 2, extra: 2 }));
        assert!(p.fallback_active());
        // The same shortfall again: no new change.
        assert_eq!(place(&policy(), 20, 7, 2, &mut history, at(20)).change, None);
        // A shortfall larger than the spot share counts as the spot share.
        let p = place(&policy(), 20, 7, 9, &mut history, at(30));
        assert_eq!((p.split, p.shortfall), (Split { on_demand: 7, spot: 3 }, 3));
    }

    #[test]
    fn the_extra_never_goes_past_max_in_total() {
        let mut history = SpotHistory::new();
        let p = place(&policy(), 8, 7, 3, &mut history, at(0));
        assert_eq!(p.split, Split { on_demand: 5, spot: 3 }, "only one replica of room under max 8");
        assert_eq!(p.split.total(), 8);
        let p = place(&policy(), 7, 7, 3, &mut history, at(1));
        assert_eq!((p.split, p.extra), (Split { on_demand: 4, spot: 3 }, 0), "at max: no room");
    }

    #[test]
    fn recovery_waits_retry_spot_after_then_shifts_back_step_by_step() {
        let mut history = SpotHistory::new();
        let mut policy = policy();
        policy.on_demand_percentage = 0;
        place(&policy, 40, 12, 10, &mut history, at(0));
        let extras: Vec<_> = [300, 599, 600, 601, 602, 603, 604, 605]
            .iter()
            .map(|&t| place(&policy, 40, 12, 0, &mut history, at(t)).extra)
            .collect();
        assert_eq!(extras, vec![10, 10, 5, 3, 2, 1, 0, 0]);
        // A new shortfall during the shift back stops it and restarts the wait.
        place(&policy, 40, 12, 10, &mut history, at(1000));
        place(&policy, 40, 12, 0, &mut history, at(1600));
        let p = place(&policy, 40, 12, 4, &mut history, at(1601));
        assert_eq!((p.extra, p.change), (5, None), "4 short, 5 still extra: nothing added");
        assert_eq!(place(&policy, 40, 12, 0, &mut history, at(2200)).extra, 5);
        assert_eq!(
            place(&policy, 40, 12, 0, &mut history, at(2201)).change,
            Some(SpotChange::ShiftBack { moved: 2, extra: 3 })
        );
    }

    #[test]
    fn the_extra_shrinks_with_the_spot_share() {
        let mut history = SpotHistory::new();
        place(&policy(), 40, 20, 10, &mut history, at(0));
        let p = place(&policy(), 40, 3, 1, &mut history, at(1));
        assert_eq!((p.split, p.extra), (Split { on_demand: 3, spot: 0 }, 0), "no spot share left to stand in for");
    }
}
