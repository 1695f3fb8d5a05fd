//! The HPA controller as KEDA drives it — written from the upstream controller, not from this
//! project's policy, so that a bug in one shows up as a difference with the other.
//!
//! KEDA creates its HPA with `behavior: nil` unless the ScaledObject sets
//! `advanced.horizontalPodAutoscalerConfig.behavior` (kedacore/keda `controllers/keda/hpa.go`,
//! `newHPAForScaledObject`), so the controller takes its legacy path (kubernetes
//! `pkg/controller/podautoscaler/horizontal.go`, `reconcileAutoscaler` → `normalizeDesiredReplicas`):
//!
//! - each External `AverageValue` metric proposes `ceil(usage / target)`, unless
//!   `usage / (target × statusReplicas)` is within the tolerance (`replica_calculator.go`,
//!   `GetExternalPerPodMetricReplicas`); the highest proposal wins (`computeReplicasForMetrics`);
//! - `stabilizeRecommendation`: the highest recommendation of the last 5 minutes (the
//!   `--horizontal-pod-autoscaler-downscale-stabilization` default), the raw one being recorded,
//!   the history seeded with the current replicas on first sight (`recordInitialRecommendation`);
//! - `convertDesiredReplicasWithRules`: at most `max(2 × current, 4)` (`calculateScaleUpLimit`),
//!   within `[minReplicas, maxReplicas]`;
//! - a current count outside the bounds is brought to the bound without normalization, and
//!   `current == 0` with `minReplicas > 0` means autoscaling is disabled.

/// `--horizontal-pod-autoscaler-downscale-stabilization`'s default, in seconds.
pub const DOWNSCALE_STABILIZATION: u64 = 300;
/// `--horizontal-pod-autoscaler-tolerance`'s default.
pub const TOLERANCE: f64 = 0.1;
/// `scaleUpLimitFactor` and `scaleUpLimitMinimum`.
const SCALE_UP_FACTOR: f64 = 2.0;
const SCALE_UP_MINIMUM: f64 = 4.0;

/// One HPA: its bounds and its recommendation history.
#[derive(Debug, Clone)]
pub struct Hpa {
    min: u32,
    max: u32,
    /// `(recommendation, timestamp)`, as `a.recommendations[key]`.
    recommendations: Vec<(u32, u64)>,
}

/// One External metric: the value the metrics server returned and its `AverageValue` target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub usage: f64,
    pub target_per_pod: f64,
}

impl Hpa {
    pub fn new(min: u32, max: u32) -> Hpa {
        Hpa { min, max, recommendations: Vec::new() }
    }

    /// One `reconcileAutoscaler` at second `now`: the replicas it would write (or `current`).
    pub fn reconcile(&mut self, now: u64, current: u32, status_replicas: u32, metrics: &[Metric]) -> u32 {
        if self.recommendations.is_empty() {
            self.recommendations.push((current, now));
        }
        if current == 0 && self.min != 0 {
            return current;
        }
        if current > self.max {
            return self.max;
        }
        if current < self.min {
            return self.min;
        }
        let proposed = metrics.iter().map(|m| per_pod_replicas(*m, status_replicas)).max().unwrap_or(current);
        let stabilized = self.stabilize(now, proposed);
        self.convert_with_rules(current, stabilized)
    }

    /// `stabilizeRecommendation`: the highest recommendation not older than the window; the raw
    /// one replaces an old sample, or is appended.
    fn stabilize(&mut self, now: u64, proposed: u32) -> u32 {
        let cutoff = now.saturating_sub(DOWNSCALE_STABILIZATION);
        let mut highest = proposed;
        let mut old = None;
        for (i, (recommendation, at)) in self.recommendations.iter().enumerate() {
            if *at < cutoff {
                old = Some(i);
            } else if *recommendation > highest {
                highest = *recommendation;
            }
        }
        match old {
            Some(i) => self.recommendations[i] = (proposed, now),
            None => self.recommendations.push((proposed, now)),
        }
        highest
    }

    /// `convertDesiredReplicasWithRules`.
    fn convert_with_rules(&self, current: u32, desired: u32) -> u32 {
        let scale_up_limit = (SCALE_UP_FACTOR * f64::from(current)).max(SCALE_UP_MINIMUM) as u32;
        let most = if self.max > scale_up_limit { scale_up_limit } else { self.max };
        if desired < self.min {
            self.min
        } else if desired > most {
            most
        } else {
            desired
        }
    }
}

/// `GetExternalPerPodMetricReplicas`: `ceil(usage / target)`, or `statusReplicas` while the usage
/// ratio is within the tolerance.
pub fn per_pod_replicas(metric: Metric, status_replicas: u32) -> u32 {
    let usage = if metric.usage.is_finite() { metric.usage.max(0.0) } else { 0.0 };
    let ratio = usage / (metric.target_per_pod * f64::from(status_replicas));
    if ((1.0 - TOLERANCE)..=(1.0 + TOLERANCE)).contains(&ratio) {
        return status_replicas;
    }
    // Saturating, as the upstream code caps at MaxInt32.
    (usage / metric.target_per_pod).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(usage: f64, target_per_pod: f64) -> Metric {
        Metric { usage, target_per_pod }
    }

    #[test]
    fn per_pod_replicas_follow_the_documented_examples() {
        // KEDA's docs: queue 20, threshold 5 → 4. Kubernetes' docs: 95 at AverageValue 10 → 10,
        // and with 10 replicas the ratio 0.95 is within the tolerance.
        assert_eq!(per_pod_replicas(metric(20.0, 5.0), 0), 4);
        assert_eq!(per_pod_replicas(metric(95.0, 10.0), 3), 10);
        assert_eq!(per_pod_replicas(metric(95.0, 10.0), 10), 10);
        assert_eq!(per_pod_replicas(metric(112.0, 10.0), 10), 12, "ratio 1.12: outside");
        assert_eq!(per_pod_replicas(metric(85.0, 10.0), 10), 9);
    }

    #[test]
    fn the_legacy_scale_up_limit_doubles_or_adds_to_four() {
        let mut hpa = Hpa::new(1, 100);
        assert_eq!(hpa.reconcile(0, 1, 1, &[metric(1e6, 1.0)]), 4, "max(2 × 1, 4)");
        assert_eq!(hpa.reconcile(15, 4, 4, &[metric(1e6, 1.0)]), 8);
        assert_eq!(hpa.reconcile(30, 8, 8, &[metric(1e6, 1.0)]), 16);
    }

    #[test]
    fn scale_down_waits_for_the_highest_of_five_minutes() {
        let mut hpa = Hpa::new(1, 100);
        // Seeded with 10 at t = 0, then the demand falls to 2.
        assert_eq!(hpa.reconcile(0, 10, 10, &[metric(20.0, 10.0)]), 10);
        assert_eq!(hpa.reconcile(15, 10, 10, &[metric(20.0, 10.0)]), 10);
        assert_eq!(hpa.reconcile(299, 10, 10, &[metric(20.0, 10.0)]), 10, "the seed is still in the window");
        assert_eq!(hpa.reconcile(301, 10, 10, &[metric(20.0, 10.0)]), 2, "straight down once it has left");
    }

    #[test]
    fn bounds_and_disabled_autoscaling() {
        let mut hpa = Hpa::new(2, 5);
        assert_eq!(hpa.reconcile(0, 0, 0, &[metric(50.0, 1.0)]), 0, "current 0 with min 2: disabled");
        assert_eq!(hpa.reconcile(15, 9, 9, &[metric(0.0, 1.0)]), 5, "above max: to max");
        assert_eq!(hpa.reconcile(30, 1, 1, &[metric(50.0, 1.0)]), 2, "below min: to min");
    }
}
