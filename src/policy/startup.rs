//! The start-up delay of new replicas, learned from the ready replicas the daemon sees after a
//! scale-up (the wait objective plans with it): from the write until every replica asked for is
//! ready, read at the polls (so to within one interval: the midpoint of the last two is taken).

use std::time::Duration;

/// Learned delays are kept within this bound (a stuck rollout is not a start-up delay).
const LONGEST: Duration = Duration::from_secs(3600);
/// Weight of a new measurement against what was learned before.
const WEIGHT: f64 = 0.3;

#[derive(Debug, Clone, Default)]
pub struct StartupClock {
    /// The replicas the last scale-up asked for, and when it was written.
    pending: Option<(u32, Duration)>,
    learned: Option<Duration>,
    last_poll: Option<Duration>,
}

impl StartupClock {
    /// A rescale was applied: a scale-up starts the clock; a scale-down below what is awaited
    /// stops it (the replicas waited for may be the ones removed).
    pub fn rescaled(&mut self, from: u32, to: u32, now: Duration) {
        if to > from {
            self.pending = Some((to, now));
        } else if self.pending.is_some_and(|(awaited, _)| to < awaited) {
            self.pending = None;
        }
    }

    /// The ready replicas seen at this poll (`None`: not known).
    pub fn observe(&mut self, ready: Option<u32>, now: Duration) {
        if let (Some((awaited, at)), Some(ready)) = (self.pending, ready)
            && ready >= awaited
        {
            // Ready at some moment after both the write and the last poll: take the midpoint.
            let after = self.last_poll.map_or(at, |last| last.max(at)).min(now);
            let sample = (after + now.saturating_sub(after) / 2).saturating_sub(at).min(LONGEST);
            self.learned = Some(match self.learned {
                None => sample,
                Some(learned) => learned.mul_f64(1.0 - WEIGHT) + sample.mul_f64(WEIGHT),
            });
            self.pending = None;
        }
        self.last_poll = Some(now);
    }

    /// The learned delay, or `prior` until one was measured.
    pub fn delay(&self, prior: Duration) -> Duration {
        self.learned.unwrap_or(prior)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn learns_the_delay_from_ready_replicas() {
        let mut clock = StartupClock::default();
        assert_eq!(clock.delay(secs(30)), secs(30), "the prior until measured");
        clock.observe(Some(2), secs(0));
        clock.rescaled(2, 5, secs(0));
        clock.observe(Some(3), secs(40));
        clock.observe(Some(5), secs(80));
        // Ready between the polls at 40 s and 80 s: the midpoint.
        assert_eq!(clock.delay(secs(30)), secs(60));
        clock.rescaled(5, 8, secs(100));
        clock.observe(Some(8), secs(120));
        // Ready between the write (100 s) and the poll at 120 s: 10 s.
        assert_eq!(clock.delay(secs(30)), secs(45), "0.7 × 60 + 0.3 × 10");
    }

    #[test]
    fn a_scale_down_below_the_awaited_replicas_stops_the_clock() {
        let mut clock = StartupClock::default();
        clock.rescaled(2, 6, secs(0));
        clock.rescaled(6, 3, secs(10));
        clock.observe(Some(6), secs(500));
        assert_eq!(clock.delay(secs(30)), secs(30), "nothing measured");
    }
}
