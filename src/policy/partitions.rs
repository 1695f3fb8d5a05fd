//! An even spread of a Kafka group's partitions over its consumers: the recommendation rounded
//! up to a factor of the partition count, so that every consumer is assigned as many partitions
//! (KEDA's `ensureEvenDistributionOfPartitions`: kedacore/keda `pkg/scalers/kafka_scaler.go`,
//! `getNextFactorThatBalancesConsumersToTopicPartitions`, the smallest factor `f` of the
//! partitions with `f × lagThreshold ≥ totalLag`, i.e. `f ≥ ceil(totalLag / lagThreshold)`).

/// The smallest factor of `partitions` that is at least `replicas`; `partitions` itself when
/// `replicas` is more (KEDA's fallback), and 0 for 0 (no work: activation decides, as it does
/// for KEDA, whose activity is the lag itself). With no partitions there is nothing to spread.
pub fn round_up_to_factor(replicas: u32, partitions: u32) -> u32 {
    if replicas == 0 || partitions == 0 {
        return replicas;
    }
    (replicas..=partitions).find(|f| partitions.is_multiple_of(*f)).unwrap_or(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keda_docs_example_ten_partitions() {
        // KEDA's docs: 10 partitions, lagThreshold 10: lag 1-10 → 1, 11-20 → 2, 21-50 → 5, 51+ → 10.
        let replicas_for_lag = |lag: u32| round_up_to_factor(lag.div_ceil(10), 10);
        let cases = [(1, 1), (10, 1), (11, 2), (20, 2), (21, 5), (50, 5), (51, 10), (100, 10), (5000, 10)];
        for (lag, expected) in cases {
            assert_eq!(replicas_for_lag(lag), expected, "lag {lag}");
        }
    }

    #[test]
    fn factors_of_other_counts() {
        let cases = [
            (0, 12, 0),
            (1, 12, 1),
            (5, 12, 6),
            (7, 12, 12),
            (13, 12, 12),
            (2, 7, 7), // a prime: one consumer or all of them
            (3, 1, 1),
            (4, 0, 4), // no partitions: nothing to spread
        ];
        for (replicas, partitions, expected) in cases {
            assert_eq!(round_up_to_factor(replicas, partitions), expected, "{replicas} over {partitions}");
        }
    }

    #[test]
    fn the_result_always_divides_the_partitions() {
        for partitions in 1..=60 {
            for replicas in 1..=70 {
                let f = round_up_to_factor(replicas, partitions);
                assert_eq!(partitions % f, 0, "{replicas} over {partitions} → {f}");
                assert!(f >= replicas.min(partitions), "{replicas} over {partitions} → {f}");
            }
        }
    }

    #[test]
    fn decide_rounds_up_then_caps_at_the_partitions() {
        use crate::policy::{
            Fallback, History, Inputs, Load, Observation, Pause, Sample, ScalingRules, TargetPolicy, TriggerPolicy,
            decide,
        };
        use std::time::Duration;
        let policy = TargetPolicy {
            min_replicas: 1,
            max_replicas: 100,
            triggers: vec![TriggerPolicy { source: "lag".into(), per_replica: Some(10.0), activation: 0.0 }],
            scale_up: ScalingRules::hpa_scale_up(),
            scale_down: ScalingRules::hpa_scale_down(),
            cooldown: Duration::ZERO,
            fallback_threshold: 3,
            fallback: Fallback::Hold,
            objective: None,
        };
        let recommended = |value: f64| {
            let load = Load { waiting: value, ..Load::default() };
            let observations = [Observation::Answered(Sample { value, cap: Some(12), even: true, load })];
            let inputs = Inputs {
                current: 1,
                ready: None,
                observations: &observations,
                pause: Pause::None,
                now: Duration::ZERO,
            };
            decide(&policy, &mut History::new(), &inputs).recommended
        };
        assert_eq!(recommended(45.0), vec![Some(6)], "ceil(45 / 10) = 5 → 6, a factor of 12");
        assert_eq!(recommended(75.0), vec![Some(12)], "8 → 12");
        assert_eq!(recommended(5000.0), vec![Some(12)], "never past the partitions");
        assert_eq!(recommended(0.0), vec![Some(0)]);
    }
}
