//! How long the tasks now waiting have waited: from the cumulative arrivals seen at each poll and
//! FIFO order. With `A(t)` the tasks arrived by `t` and `B` the tasks waiting now, the queue holds
//! tasks number `A(now) − B` to `A(now)`; the one numbered `A(u)` arrived by the poll at `u`, so it
//! has waited at least `now − u` with `A(u) − (A(now) − B)` tasks ahead of it.
//!
//! Counted sources give `A` directly (Kafka's end offsets); Airflow's is what finished plus what
//! runs plus what waits; for the others it is the arrival estimate integrated over the intervals.

use std::collections::VecDeque;
use std::time::Duration;

use super::queueing::Ages;

/// Polls kept at most (the oldest go first).
const LONGEST_HISTORY: usize = 512;

/// Cumulative arrivals at each recent poll.
#[derive(Debug, Clone, Default)]
pub struct ArrivalHistory {
    points: VecDeque<(Duration, f64)>,
}

impl ArrivalHistory {
    /// The cumulative arrivals at the last poll, if any.
    pub fn last(&self) -> Option<f64> {
        self.points.back().map(|(_, a)| *a)
    }

    /// Records `arrived` (cumulative) at `now`.
    pub fn record(&mut self, now: Duration, arrived: f64) {
        if self.points.back().is_some_and(|(at, a)| *at >= now || *a > arrived) {
            // Time or count going backwards: what came before says nothing about this queue.
            self.points.clear();
        }
        self.points.push_back((now, arrived));
        if self.points.len() > LONGEST_HISTORY {
            self.points.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.points.clear();
    }

    /// Checkpoints through the `waiting` tasks: `(tasks ahead, seconds waited)`, from the head of
    /// the queue to the newest. Drops the polls older than the head needs.
    pub fn ages(&mut self, now: Duration, waiting: f64) -> Ages {
        let Some(arrived) = self.last() else { return Ages::default() };
        let head = arrived - waiting.max(0.0);
        // Keep one poll at or before the head (to place it), and everything after.
        while self.points.len() > 1 && self.points.get(1).is_some_and(|(_, a)| *a <= head) {
            self.points.pop_front();
        }
        let seconds = |at: Duration| now.saturating_sub(at).as_secs_f64();
        let mut checkpoints = Vec::with_capacity(self.points.len() + 1);
        checkpoints.push((0.0, self.head_age(head, now)));
        checkpoints.extend(self.points.iter().filter(|(_, a)| *a > head).map(|(at, a)| (a - head, seconds(*at))));
        Ages::new(&checkpoints)
    }

    /// When the task at the head arrived (between the polls that bracket its number), as seconds
    /// ago; the oldest poll's age when the history does not reach back that far.
    fn head_age(&self, head: f64, now: Duration) -> f64 {
        let seconds = |at: Duration| now.saturating_sub(at).as_secs_f64();
        let mut points = self.points.iter();
        let Some(&(first_at, first)) = points.next() else { return 0.0 };
        if first > head {
            return seconds(first_at);
        }
        let mut before = (first_at, first);
        for &(at, a) in points {
            if a > head {
                let share = (head - before.1) / (a - before.1);
                return seconds(before.0) - share * (at - before.0).as_secs_f64();
            }
            before = (at, a);
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_burst_keeps_its_age_as_it_drains() {
        // 3,000 tasks land between the polls at 0 s and 15 s; at 300 s, 1,500 are still waiting.
        let mut history = ArrivalHistory::default();
        history.record(secs(0), 100.0);
        history.record(secs(15), 3100.0);
        history.record(secs(300), 3100.0);
        let ages = history.ages(secs(300), 1500.0);
        let points = ages.points();
        assert!(points.contains(&(1500.0, 285.0)), "the newest of the burst: {points:?}");
        // The head, task 1,600, arrived half-way between 0 s and 15 s: 292.5 s ago.
        assert!(points.contains(&(0.0, 292.5)), "{points:?}");
        assert_eq!(ages.oldest(), 292.5);
    }

    #[test]
    fn an_empty_queue_has_nothing_waiting_and_old_polls_go() {
        let mut history = ArrivalHistory::default();
        for t in 0..100 {
            history.record(secs(t * 15), (t * 30) as f64);
        }
        let ages = history.ages(secs(99 * 15), 0.0);
        assert!(ages.points().iter().all(|(ahead, _)| *ahead == 0.0), "{:?}", ages.points());
        assert!(history.points.len() <= 2, "only what places the head is kept");
    }

    #[test]
    fn counts_or_time_going_backwards_forget_the_past() {
        let mut history = ArrivalHistory::default();
        history.record(secs(0), 50.0);
        history.record(secs(10), 20.0);
        assert_eq!(history.points.len(), 1);
        let ages = history.ages(secs(10), 20.0);
        assert_eq!(ages.oldest(), 0.0, "nothing known before the reset");
    }
}
