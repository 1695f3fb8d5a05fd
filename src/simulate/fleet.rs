//! The replicas of a target in virtual time, each with its task slots: starting (paid, not yet
//! taking tasks), ready (taking tasks), draining (removed by a scale-down: takes no new task,
//! finishes the ones it runs, paid until then, as a worker's warm shutdown does).
//!
//! Free slots are kept in a heap by the time they come free, so that a second with thousands of
//! short tasks costs a heap operation per task.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::queue::{Queue, Task};
use crate::policy::spot::Split;

/// Which capacity type a replica runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    OnDemand,
    Spot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting { ready_at: u64 },
    Ready,
    Draining,
    Gone,
}

#[derive(Debug)]
struct Replica {
    capacity: Capacity,
    state: State,
    /// Per slot: when it comes free, and the task it runs (with its start) until then.
    slots: Vec<(f64, Option<(Task, f64)>)>,
}

impl Replica {
    /// When its last running task ends.
    fn done_at(&self) -> f64 {
        self.slots.iter().map(|(free, _)| *free).fold(0.0, f64::max)
    }
}

/// A slot coming free at `.0` (ordered by time, then replica, then slot: deterministic).
#[derive(Debug, Clone, Copy, PartialEq)]
struct FreeSlot(f64, usize, usize);

impl Eq for FreeSlot {}

impl Ord for FreeSlot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1)).then(self.2.cmp(&other.2))
    }
}

impl PartialOrd for FreeSlot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The replicas and their slots.
#[derive(Debug)]
pub struct Fleet {
    slots: usize,
    replicas: Vec<Replica>,
    /// Replicas not yet gone (indices into `replicas`).
    live: Vec<usize>,
    free: BinaryHeap<Reverse<FreeSlot>>,
}

impl Fleet {
    /// A fleet with `split` replicas ready, each with `slots` slots.
    pub fn ready_with(split: Split, slots: u32) -> Fleet {
        let mut fleet =
            Fleet { slots: slots as usize, replicas: Vec::new(), live: Vec::new(), free: BinaryHeap::new() };
        for (capacity, n) in [(Capacity::OnDemand, split.on_demand), (Capacity::Spot, split.spot)] {
            for _ in 0..n {
                let id = fleet.add(capacity, State::Ready);
                fleet.free_all(id, 0.0);
            }
        }
        fleet
    }

    fn add(&mut self, capacity: Capacity, state: State) -> usize {
        self.replicas.push(Replica { capacity, state, slots: vec![(0.0, None); self.slots] });
        self.live.push(self.replicas.len() - 1);
        self.replicas.len() - 1
    }

    fn free_all(&mut self, id: usize, at: f64) {
        for slot in 0..self.slots {
            self.replicas[id].slots[slot].0 = at;
            self.free.push(Reverse(FreeSlot(at, id, slot)));
        }
    }

    /// Replicas whose start-up ends by `t` become ready and take tasks.
    pub fn promote(&mut self, t: u64) {
        let due: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|id| matches!(self.replicas[*id].state, State::Starting { ready_at } if ready_at <= t))
            .collect();
        for id in due {
            self.replicas[id].state = State::Ready;
            self.free_all(id, t as f64);
        }
    }

    /// Starts waiting tasks on every ready slot that comes free before the second ends.
    pub fn serve(&mut self, t: u64, queue: &mut Queue) {
        let end = (t + 1) as f64;
        while !queue.is_empty() {
            let Some(Reverse(FreeSlot(free_at, id, slot))) = self.free.peek().copied() else { return };
            if free_at >= end {
                return;
            }
            self.free.pop();
            if self.replicas[id].state != State::Ready || self.replicas[id].slots[slot].0 != free_at {
                continue; // a slot of a replica since removed, or a stale entry
            }
            let start = free_at.max(t as f64);
            let Some(task) = queue.start(start) else { return };
            let done = start + task.duration;
            self.replicas[id].slots[slot] = (done, Some((task, start)));
            self.free.push(Reverse(FreeSlot(done, id, slot)));
        }
    }

    /// Scales each capacity type to its share of `target`: new replicas are ready after `delay`;
    /// removals take starting replicas first (newest first), then the ready ones that finish
    /// soonest, which drain. Returns whether anything changed.
    pub fn scale_to(&mut self, t: u64, target: Split, delay: u64) -> bool {
        let now = self.provisioned();
        let mut changed = false;
        for (capacity, have, want) in
            [(Capacity::OnDemand, now.on_demand, target.on_demand), (Capacity::Spot, now.spot, target.spot)]
        {
            changed |= have != want;
            for _ in have..want {
                self.add(capacity, State::Starting { ready_at: t + delay });
            }
            for _ in want..have {
                self.remove_one(capacity);
            }
        }
        self.prune(t);
        changed
    }

    fn remove_one(&mut self, capacity: Capacity) {
        let of = |r: &Replica| r.capacity == capacity;
        let starting = self.live.iter().rev().copied().find(|id| {
            let r = &self.replicas[*id];
            of(r) && matches!(r.state, State::Starting { .. })
        });
        if let Some(id) = starting {
            self.replicas[id].state = State::Gone;
            return;
        }
        let soonest = self
            .live
            .iter()
            .copied()
            .filter(|id| of(&self.replicas[*id]) && self.replicas[*id].state == State::Ready)
            .min_by(|a, b| self.replicas[*a].done_at().total_cmp(&self.replicas[*b].done_at()));
        if let Some(id) = soonest {
            self.replicas[id].state = State::Draining;
        }
    }

    /// Interrupts up to `n` ready spot replicas (the oldest): their running tasks are returned to
    /// be queued again, and each is replaced by a new spot replica, ready after `delay`.
    pub fn interrupt_spot(&mut self, t: u64, n: u32, delay: u64) -> Vec<(Task, f64)> {
        let victims: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|id| self.replicas[*id].capacity == Capacity::Spot && self.replicas[*id].state == State::Ready)
            .take(n as usize)
            .collect();
        let mut lost = Vec::new();
        for id in victims {
            let now = t as f64;
            lost.extend(self.replicas[id].slots.iter().filter_map(|(free, task)| task.filter(|_| *free > now)));
            self.replicas[id].state = State::Gone;
            self.add(Capacity::Spot, State::Starting { ready_at: t + delay });
        }
        self.prune(t);
        lost
    }

    /// Drops replicas that are gone, or drained.
    fn prune(&mut self, t: u64) {
        let now = t as f64;
        for id in &self.live {
            let replica = &mut self.replicas[*id];
            if replica.state == State::Draining && replica.done_at() <= now {
                replica.state = State::Gone;
            }
        }
        self.live.retain(|id| self.replicas[*id].state != State::Gone);
    }

    /// Replicas that exist in the Deployments (starting or ready): what the scaler sees.
    pub fn provisioned(&self) -> Split {
        self.count(|state| matches!(state, State::Starting { .. } | State::Ready))
    }

    /// Replicas paid for at second `t`: starting, ready, and draining ones still finishing.
    pub fn paid(&mut self, t: u64) -> Split {
        self.prune(t);
        self.count(|state| state != State::Gone)
    }

    fn count(&self, counted: impl Fn(State) -> bool) -> Split {
        let mut split = Split { on_demand: 0, spot: 0 };
        for r in self.live.iter().map(|id| &self.replicas[*id]).filter(|r| counted(r.state)) {
            match r.capacity {
                Capacity::OnDemand => split.on_demand += 1,
                Capacity::Spot => split.spot += 1,
            }
        }
        split
    }

    pub fn ready(&self) -> u32 {
        self.live.iter().filter(|id| self.replicas[**id].state == State::Ready).count() as u32
    }

    pub fn ready_spot(&self) -> u32 {
        let spot = |id: &&usize| self.replicas[**id].capacity == Capacity::Spot;
        self.live.iter().filter(spot).filter(|id| self.replicas[**id].state == State::Ready).count() as u32
    }

    /// Tasks running at the end of second `t`, when the sources are polled (on ready and
    /// draining replicas): a task started and finished within the second is not running.
    pub fn running(&self, t: u64) -> u64 {
        let now = (t + 1) as f64;
        self.live.iter().map(|id| self.replicas[*id].slots.iter().filter(|(free, _)| *free > now).count() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(arrived: u64, duration: f64) -> Task {
        Task { arrived, duration }
    }

    #[test]
    fn slots_run_tasks_back_to_back_within_a_second() {
        // One replica, 2 slots; tasks of 0.25 s: 8 start in the first second.
        let mut fleet = Fleet::ready_with(Split { on_demand: 1, spot: 0 }, 2);
        let mut queue = Queue::default();
        for _ in 0..10 {
            queue.push(task(0, 0.25));
        }
        fleet.serve(0, &mut queue);
        assert_eq!((queue.len(), queue.started()), (2, 8));
        assert_eq!(fleet.running(0), 0, "the eight ended within the second");
        fleet.serve(1, &mut queue);
        assert!(queue.is_empty());
        assert_eq!(fleet.running(1), 0);
    }

    #[test]
    fn new_replicas_take_tasks_after_the_delay_and_removed_ones_drain() {
        let mut fleet = Fleet::ready_with(Split { on_demand: 1, spot: 0 }, 1);
        let mut queue = Queue::default();
        queue.push(task(0, 100.0));
        fleet.serve(0, &mut queue);
        assert!(fleet.scale_to(0, Split { on_demand: 3, spot: 0 }, 30));
        assert_eq!((fleet.ready(), fleet.provisioned().total()), (1, 3));
        fleet.promote(30);
        assert_eq!(fleet.ready(), 3);
        // Back to 1: the two idle ones go at once, never the busy one.
        assert!(fleet.scale_to(40, Split { on_demand: 1, spot: 0 }, 30));
        assert_eq!((fleet.running(40), fleet.paid(40).total()), (1, 1));
        // To 0: the busy one drains, paid until its task ends at 100 s.
        fleet.scale_to(50, Split { on_demand: 0, spot: 0 }, 30);
        assert_eq!((fleet.provisioned().total(), fleet.paid(50).total(), fleet.running(50)), (0, 1, 1));
        assert_eq!(fleet.running(99), 0, "ends at 100 s, the end of second 99");
        assert_eq!(fleet.paid(100).total(), 0);
    }

    #[test]
    fn an_interrupted_spot_replica_gives_back_its_tasks_and_is_replaced() {
        let mut fleet = Fleet::ready_with(Split { on_demand: 0, spot: 2 }, 2);
        let mut queue = Queue::default();
        for _ in 0..3 {
            queue.push(task(0, 50.0));
        }
        fleet.serve(0, &mut queue);
        let lost = fleet.interrupt_spot(10, 1, 30);
        assert_eq!(lost.len(), 2, "the first spot replica ran two tasks");
        assert_eq!((fleet.ready(), fleet.provisioned(), fleet.running(10)), (1, Split { on_demand: 0, spot: 2 }, 1));
        fleet.promote(40);
        assert_eq!(fleet.ready_spot(), 2);
    }
}
