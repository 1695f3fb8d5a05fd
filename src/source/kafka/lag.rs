//! Lag arithmetic, apart from any I/O (KEDA's `getLagForPartition`, kedacore/keda
//! `pkg/scalers/kafka_scaler.go`): lag = end offset − committed offset, clamped at 0. Without a
//! commit (an "invalid offset"), as KEDA counts it: under `latest` 1, so that a group that has
//! never committed still gets a consumer to start it; under `earliest` the retained messages,
//! end − log start (kedacore/keda#7936, fixed by KEDA in #7937); and 0 under either with
//! `scale_to_zero_on_invalid_offset` (KEDA's `scaleToZeroOnInvalidOffset`).

use std::collections::BTreeMap;

/// What a consumer with no committed offset does (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Latest,
    Earliest,
}

/// One partition's offsets, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offsets {
    pub topic: String,
    pub partition: i32,
    /// `None`: the group has no commit for it.
    pub committed: Option<i64>,
    /// The log end offset (high watermark, or the last stable offset under read_committed).
    pub end: i64,
    /// The log start offset, read only when needed (no commit, `earliest`).
    pub low: Option<i64>,
}

/// One partition's lag, for reports (`once --output json`) and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// `None` (`null`): the group has no commit for it.
    pub committed: Option<i64>,
    pub end: i64,
    pub lag: i64,
    /// Left out of the total: its commit has not moved for `persistent_lag_polls` polls while
    /// it lagged (`exclude_persistent_lag`).
    pub persistent: bool,
}

/// How a partition's lag is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagRules {
    pub reset: OffsetReset,
    /// A partition without a commit counts 0 (`scale_to_zero_on_invalid_offset`).
    pub zero_without_commit: bool,
}

impl LagRules {
    /// Whether the log starts of uncommitted partitions are needed.
    pub fn needs_log_starts(&self) -> bool {
        self.reset == OffsetReset::Earliest && !self.zero_without_commit
    }
}

pub fn lag(offsets: &Offsets, rules: LagRules) -> i64 {
    match (offsets.committed, rules.reset) {
        (Some(committed), _) => (offsets.end - committed).max(0),
        (None, _) if rules.zero_without_commit => 0,
        (None, OffsetReset::Latest) => 1,
        (None, OffsetReset::Earliest) => (offsets.end - offsets.low.unwrap_or(0)).max(0),
    }
}

/// Remembers, per partition, the last commit seen and for how many polls it has not moved
/// while the partition lagged.
#[derive(Debug, Default)]
pub struct Persistence {
    seen: BTreeMap<(String, i32), (Option<i64>, u32)>,
}

impl Persistence {
    /// Records this poll; returns whether the partition's lag is persistent (stuck for `polls`).
    /// A partition without a commit never is: nothing has stopped moving (KEDA returns before
    /// its persistence check too).
    pub fn observe(&mut self, offsets: &Offsets, lag: i64, polls: u32) -> bool {
        let key = (offsets.topic.clone(), offsets.partition);
        let Some(entry) = self.seen.get_mut(&key) else {
            // First sight: nothing to compare with yet.
            self.seen.insert(key, (offsets.committed, 0));
            return false;
        };
        let stuck = lag > 0 && offsets.committed.is_some() && entry.0 == offsets.committed;
        entry.1 = if stuck { entry.1.saturating_add(1) } else { 0 };
        entry.0 = offsets.committed;
        entry.1 >= polls
    }
}

/// The partitions' lags, their total (persistent ones left out when asked), and the
/// partitions a consumer group could use: all of them, or only those with lag.
pub fn summarize(
    all: &[Offsets],
    rules: LagRules,
    persistence: Option<(&mut Persistence, u32)>,
) -> (Vec<PartitionLag>, i64) {
    let mut persistence = persistence;
    let lags: Vec<PartitionLag> = all
        .iter()
        .map(|o| {
            let lag = lag(o, rules);
            let persistent = persistence.as_mut().is_some_and(|(p, polls)| p.observe(o, lag, *polls));
            PartitionLag {
                topic: o.topic.clone(),
                partition: o.partition,
                committed: o.committed,
                end: o.end,
                lag,
                persistent,
            }
        })
        .collect();
    let total = lags.iter().filter(|l| !l.persistent).map(|l| l.lag).fold(0i64, i64::saturating_add);
    (lags, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(committed: Option<i64>, end: i64, low: Option<i64>) -> Offsets {
        Offsets { topic: "orders".into(), partition: 0, committed, end, low }
    }

    const LATEST: LagRules = LagRules { reset: OffsetReset::Latest, zero_without_commit: false };
    const EARLIEST: LagRules = LagRules { reset: OffsetReset::Earliest, zero_without_commit: false };

    #[test]
    fn lag_per_partition() {
        let cases = [
            (offsets(Some(40), 100, None), LATEST, 60),
            (offsets(Some(100), 100, None), LATEST, 0),
            (offsets(Some(120), 100, None), LATEST, 0), // committed past the end: clamped
            (offsets(None, 100, Some(30)), LATEST, 1),  // no commit: one consumer to start the group
            (offsets(None, 0, None), LATEST, 1),        // even on an empty partition, as KEDA
            (offsets(None, 100, Some(30)), EARLIEST, 70), // retention removed 0..30: not lag
            (offsets(None, 100, None), EARLIEST, 100),
            (offsets(Some(10), 100, Some(30)), EARLIEST, 90),
        ];
        for (o, rules, expected) in cases {
            assert_eq!(lag(&o, rules), expected, "{o:?} {rules:?}");
        }
    }

    #[test]
    fn scale_to_zero_on_invalid_offset_counts_uncommitted_partitions_as_zero() {
        for reset in [OffsetReset::Latest, OffsetReset::Earliest] {
            let rules = LagRules { reset, zero_without_commit: true };
            assert_eq!(lag(&offsets(None, 100, Some(30)), rules), 0, "{reset:?}");
            assert_eq!(lag(&offsets(Some(40), 100, Some(30)), rules), 60, "{reset:?}: a commit counts as ever");
            assert!(!rules.needs_log_starts());
        }
        assert!(EARLIEST.needs_log_starts() && !LATEST.needs_log_starts());
    }

    #[test]
    fn a_commit_stuck_while_lagging_becomes_persistent() {
        let mut persistence = Persistence::default();
        let stuck = offsets(Some(5), 100, None);
        let flags: Vec<bool> = (0..4).map(|_| persistence.observe(&stuck, 95, 3)).collect();
        assert_eq!(flags, vec![false, false, false, true], "unchanged on the 2nd, 3rd and 4th poll");
        assert!(!persistence.observe(&offsets(Some(6), 100, None), 94, 3), "a moving commit resets it");
        let never = offsets(None, 100, None);
        for _ in 0..5 {
            assert!(!persistence.observe(&never, 1, 3), "no commit: never persistent");
        }
        let caught_up = offsets(Some(100), 100, None);
        for _ in 0..5 {
            assert!(!persistence.observe(&caught_up, 0, 3), "no lag: never persistent");
        }
    }

    #[test]
    fn the_total_leaves_persistent_lag_out_when_asked() {
        let parts = [offsets(Some(5), 100, None), Offsets { partition: 1, ..offsets(Some(50), 60, None) }];
        let mut persistence = Persistence::default();
        for _ in 0..2 {
            summarize(&parts, LATEST, Some((&mut persistence, 2)));
        }
        let (lags, total) = summarize(&parts, LATEST, Some((&mut persistence, 2)));
        assert_eq!((lags[0].persistent, lags[1].persistent, total), (true, true, 0));
        let (_, total) = summarize(&parts, LATEST, None);
        assert_eq!(total, 105);
    }
}
