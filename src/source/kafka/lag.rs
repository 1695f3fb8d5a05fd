//! Lag arithmetic, apart from any I/O (../shared/reference/keda.md §1.3, sources.md §4):
//! lag = end offset − committed offset, clamped at 0; without a commit, `latest` means the
//! consumer would start at the end (lag 0) and `earliest` at the log start, so the lag is
//! end − low watermark, not the whole end offset (messages removed by retention are not lag:
//! kedacore/keda#7936).

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

pub fn lag(offsets: &Offsets, reset: OffsetReset) -> i64 {
    match (offsets.committed, reset) {
        (Some(committed), _) => (offsets.end - committed).max(0),
        (None, OffsetReset::Latest) => 0,
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
    pub fn observe(&mut self, offsets: &Offsets, lag: i64, polls: u32) -> bool {
        let key = (offsets.topic.clone(), offsets.partition);
        let Some(entry) = self.seen.get_mut(&key) else {
            // First sight: nothing to compare with yet.
            self.seen.insert(key, (offsets.committed, 0));
            return false;
        };
        entry.1 = if lag > 0 && entry.0 == offsets.committed { entry.1.saturating_add(1) } else { 0 };
        entry.0 = offsets.committed;
        entry.1 >= polls
    }
}

/// The partitions' lags, their total (persistent ones left out when asked), and the
/// partitions a consumer group could use: all of them, or only those with lag.
pub fn summarize(
    all: &[Offsets],
    reset: OffsetReset,
    persistence: Option<(&mut Persistence, u32)>,
) -> (Vec<PartitionLag>, i64) {
    let mut persistence = persistence;
    let lags: Vec<PartitionLag> = all
        .iter()
        .map(|o| {
            let lag = lag(o, reset);
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

    #[test]
    fn lag_per_partition() {
        let cases = [
            (offsets(Some(40), 100, None), OffsetReset::Latest, 60),
            (offsets(Some(100), 100, None), OffsetReset::Latest, 0),
            (offsets(Some(120), 100, None), OffsetReset::Latest, 0), // committed past the end: clamped
            (offsets(None, 100, Some(30)), OffsetReset::Latest, 0),
            (offsets(None, 100, Some(30)), OffsetReset::Earliest, 70), // retention removed 0..30: not lag
            (offsets(None, 100, None), OffsetReset::Earliest, 100),
            (offsets(Some(10), 100, Some(30)), OffsetReset::Earliest, 90),
        ];
        for (o, reset, expected) in cases {
            assert_eq!(lag(&o, reset), expected, "{o:?} {reset:?}");
        }
    }

    #[test]
    fn a_commit_stuck_while_lagging_becomes_persistent() {
        let mut persistence = Persistence::default();
        let stuck = offsets(Some(5), 100, None);
        let flags: Vec<bool> = (0..4).map(|_| persistence.observe(&stuck, 95, 3)).collect();
        assert_eq!(flags, vec![false, false, false, true], "unchanged on the 2nd, 3rd and 4th poll");
        assert!(!persistence.observe(&offsets(Some(6), 100, None), 94, 3), "a moving commit resets it");
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
            summarize(&parts, OffsetReset::Latest, Some((&mut persistence, 2)));
        }
        let (lags, total) = summarize(&parts, OffsetReset::Latest, Some((&mut persistence, 2)));
        assert_eq!((lags[0].persistent, lags[1].persistent, total), (true, true, 0));
        let (_, total) = summarize(&parts, OffsetReset::Latest, None);
        assert_eq!(total, 105);
    }
}
