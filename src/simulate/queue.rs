//! Tasks waiting, oldest first, and what the workers made of them: the waits, the busy time.

use std::collections::VecDeque;

/// One task: when it was enqueued and how long it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Task {
    /// The second it arrived.
    pub arrived: u64,
    /// Seconds it occupies a slot.
    pub duration: f64,
}

/// The FIFO queue and its statistics.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: VecDeque<Task>,
    /// `waits[s]`: tasks that waited `s` whole seconds (rounded down) before they started.
    waits: Vec<u64>,
    started: u64,
    /// Σ durations of the tasks started: the slot-seconds of work done.
    work: f64,
}

impl Queue {
    pub fn push(&mut self, task: Task) {
        self.waiting.push_back(task);
    }

    /// Puts interrupted tasks back at the head, in their original order: they run again first.
    pub fn requeue(&mut self, mut tasks: Vec<Task>) {
        tasks.sort_by_key(|t| t.arrived);
        for task in tasks.into_iter().rev() {
            self.waiting.push_front(task);
        }
    }

    /// The next task, started at `at` (seconds): its wait is recorded.
    pub fn start(&mut self, at: f64) -> Option<Task> {
        let task = self.waiting.pop_front()?;
        let wait = (at - task.arrived as f64).max(0.0) as usize;
        if self.waits.len() <= wait {
            self.waits.resize(wait + 1, 0);
        }
        self.waits[wait] += 1;
        self.started += 1;
        self.work += task.duration;
        Some(task)
    }

    /// Forgets that an interrupted task was started (it starts again later).
    pub fn unstart(&mut self, task: &Task, started_at: f64) {
        let wait = (started_at - task.arrived as f64).max(0.0) as usize;
        if let Some(n) = self.waits.get_mut(wait) {
            *n = n.saturating_sub(1);
        }
        self.started = self.started.saturating_sub(1);
        self.work -= task.duration;
    }

    /// At the end of a run: the tasks never started count with the wait they had reached, so
    /// that a scaler that never serves them cannot show short waits (their waits are lower
    /// bounds). They stay in the queue, counted as unfinished.
    pub fn count_unstarted(&mut self, end: u64) {
        for task in &self.waiting {
            let wait = end.saturating_sub(task.arrived) as usize;
            if self.waits.len() <= wait {
                self.waits.resize(wait + 1, 0);
            }
            self.waits[wait] += 1;
            self.started += 1;
        }
    }

    /// Tasks waiting now.
    pub fn len(&self) -> u64 {
        self.waiting.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn started(&self) -> u64 {
        self.started
    }

    /// Slot-seconds of work in the tasks started.
    pub fn work(&self) -> f64 {
        self.work
    }

    /// The wait (whole seconds) that a fraction `q` of the started tasks did not exceed.
    pub fn wait_quantile(&self, q: f64) -> u64 {
        if self.started == 0 {
            return 0;
        }
        let rank = ((self.started as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (wait, n) in self.waits.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return wait as u64;
            }
        }
        self.waits.len().saturating_sub(1) as u64
    }

    pub fn wait_max(&self) -> u64 {
        self.waits.iter().rposition(|n| *n > 0).map_or(0, |w| w as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_counted_oldest_first() {
        let mut queue = Queue::default();
        for arrived in [0, 0, 3] {
            queue.push(Task { arrived, duration: 2.0 });
        }
        assert_eq!(queue.start(0.5).map(|t| t.arrived), Some(0));
        assert_eq!(queue.start(4.9).map(|t| t.arrived), Some(0));
        assert_eq!(queue.start(9.0).map(|t| t.arrived), Some(3));
        assert_eq!((queue.wait_quantile(0.5), queue.wait_max(), queue.started()), (4, 6, 3));
        assert_eq!(queue.work(), 6.0);
        assert!(queue.is_empty());
    }

    #[test]
    fn tasks_never_started_count_with_the_wait_they_reached() {
        let mut queue = Queue::default();
        queue.push(Task { arrived: 0, duration: 1.0 });
        queue.push(Task { arrived: 10, duration: 1.0 });
        queue.count_unstarted(100);
        assert_eq!((queue.wait_quantile(0.5), queue.wait_max(), queue.len()), (90, 100, 2));
    }

    #[test]
    fn an_interrupted_task_goes_back_first_and_counts_once() {
        let mut queue = Queue::default();
        queue.push(Task { arrived: 5, duration: 1.0 });
        queue.push(Task { arrived: 1, duration: 3.0 });
        let first = queue.start(6.0).expect("a task");
        queue.unstart(&first, 6.0);
        queue.requeue(vec![first]);
        assert_eq!(queue.len(), 2);
        assert_eq!((queue.started(), queue.work()), (0, 0.0));
        assert_eq!(queue.start(7.0).map(|t| t.arrived), Some(5), "back at the head");
    }
}
