//! The workload in virtual time: a FIFO backlog served by the ready replicas, and the replicas
//! themselves (starting, ready, interrupted), by capacity type.

use std::collections::VecDeque;

use crate::policy::spot::Split;

/// Tasks waiting, oldest first, served at the ready replicas' combined throughput.
#[derive(Debug, Default)]
pub struct Backlog {
    /// (second of arrival, tasks still waiting from it).
    waiting: VecDeque<(u64, u64)>,
    len: u64,
    /// Service capacity not yet turned into a whole task (throughputs are fractional).
    credit: f64,
    /// `waits[s]`: tasks that waited `s` seconds before service started.
    waits: Vec<u64>,
    served: u64,
}

impl Backlog {
    pub fn arrive(&mut self, t: u64, tasks: u64) {
        if tasks > 0 {
            self.waiting.push_back((t, tasks));
            self.len += tasks;
        }
    }

    /// Starts serving up to `capacity` tasks this second, oldest first.
    pub fn serve(&mut self, t: u64, capacity: f64) {
        self.credit += capacity;
        while self.credit >= 1.0 {
            let Some((arrived, tasks)) = self.waiting.front_mut() else { break };
            // credit ≥ 1 here and is at most a few thousand, so the cast keeps it whole.
            let take = (*tasks).min(self.credit.floor() as u64);
            *tasks -= take;
            self.len -= take;
            self.credit -= take as f64;
            self.served += take;
            let wait = (t - *arrived) as usize;
            if self.waits.len() <= wait {
                self.waits.resize(wait + 1, 0);
            }
            self.waits[wait] += take;
            if *tasks == 0 {
                self.waiting.pop_front();
            }
        }
        if self.waiting.is_empty() {
            // Idle capacity is lost, not saved up for a later burst.
            self.credit = self.credit.fract();
        }
    }

    /// Tasks waiting now.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The wait (in seconds) that a fraction `q` of the served tasks did not exceed.
    pub fn wait_quantile(&self, q: f64) -> u64 {
        if self.served == 0 {
            return 0;
        }
        let rank = ((self.served as f64) * q).ceil().max(1.0) as u64;
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

/// Which capacity type a replica runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    OnDemand,
    Spot,
}

/// The replicas of a target: ready ones, and ones starting (ready at a later second).
#[derive(Debug, Default)]
pub struct Fleet {
    ready: [u32; 2],
    /// (ready at, capacity), in start order.
    starting: VecDeque<(u64, Capacity)>,
}

fn slot(capacity: Capacity) -> usize {
    match capacity {
        Capacity::OnDemand => 0,
        Capacity::Spot => 1,
    }
}

impl Fleet {
    /// A fleet that starts with `split` replicas ready.
    pub fn ready_with(split: Split) -> Fleet {
        Fleet { ready: [split.on_demand, split.spot], starting: VecDeque::new() }
    }

    /// Replicas that exist (ready or starting): what the Deployments have, and what is paid for.
    pub fn provisioned(&self) -> Split {
        let starting = |c| self.starting.iter().filter(|(_, s)| *s == c).count() as u32;
        Split {
            on_demand: self.ready[0] + starting(Capacity::OnDemand),
            spot: self.ready[1] + starting(Capacity::Spot),
        }
    }

    pub fn ready(&self) -> u32 {
        self.ready[0] + self.ready[1]
    }

    pub fn ready_spot(&self) -> u32 {
        self.ready[1]
    }

    /// Replicas whose start-up ends by `t` become ready.
    pub fn promote(&mut self, t: u64) {
        while let Some(&(at, capacity)) = self.starting.front() {
            if at > t {
                break;
            }
            self.starting.pop_front();
            self.ready[slot(capacity)] += 1;
        }
    }

    /// Interrupts `n` ready spot replicas; the ReplicaSet replaces each, ready after `delay`.
    pub fn interrupt_spot(&mut self, t: u64, n: u32, delay: u64) {
        let n = n.min(self.ready[1]);
        self.ready[1] -= n;
        for _ in 0..n {
            self.starting.push_back((t + delay, Capacity::Spot));
        }
    }

    /// Scales each capacity type to its share of `target`: new replicas start now and are ready
    /// after `delay`; removals take starting replicas first (newest first), then ready ones.
    /// Returns whether anything changed.
    pub fn scale_to(&mut self, t: u64, target: Split, delay: u64) -> bool {
        let now = self.provisioned();
        let mut changed = false;
        for (capacity, have, want) in
            [(Capacity::OnDemand, now.on_demand, target.on_demand), (Capacity::Spot, now.spot, target.spot)]
        {
            changed |= have != want;
            for _ in have..want {
                self.starting.push_back((t + delay, capacity));
            }
            for _ in want..have {
                match self.starting.iter().rposition(|(_, c)| *c == capacity) {
                    Some(i) => {
                        self.starting.remove(i);
                    }
                    None => self.ready[slot(capacity)] -= 1,
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_drains_at_the_known_rate_oldest_first() {
        // 100 tasks at t=0, 10 per second: waits 0..=9 s, 10 tasks each.
        let mut backlog = Backlog::default();
        backlog.arrive(0, 100);
        for t in 0..10 {
            backlog.serve(t, 10.0);
        }
        assert!(backlog.is_empty());
        assert_eq!((backlog.wait_quantile(0.5), backlog.wait_quantile(0.95), backlog.wait_max()), (4, 9, 9));
    }

    #[test]
    fn fractional_throughput_accumulates_but_idle_capacity_is_lost() {
        let mut backlog = Backlog::default();
        for t in 0..100 {
            backlog.serve(t, 0.5);
        }
        backlog.arrive(100, 10);
        backlog.serve(100, 0.5);
        assert_eq!(backlog.len(), 10, "no credit saved up while idle");
        for t in 101..120 {
            backlog.serve(t, 0.5);
        }
        assert!(backlog.is_empty(), "0.5 per second: 10 tasks in 20 seconds");
    }

    #[test]
    fn the_fleet_starts_removes_and_replaces() {
        let mut fleet = Fleet::ready_with(Split { on_demand: 1, spot: 0 });
        assert!(fleet.scale_to(0, Split { on_demand: 2, spot: 3 }, 30));
        assert_eq!((fleet.ready(), fleet.provisioned()), (1, Split { on_demand: 2, spot: 3 }));
        fleet.promote(29);
        assert_eq!(fleet.ready(), 1);
        fleet.promote(30);
        assert_eq!(fleet.ready(), 5);
        fleet.interrupt_spot(40, 2, 30);
        assert_eq!((fleet.ready(), fleet.provisioned()), (3, Split { on_demand: 2, spot: 3 }));
        // Scaling spot down takes the starting replacements first.
        assert!(fleet.scale_to(41, Split { on_demand: 2, spot: 1 }, 30));
        assert_eq!(fleet.ready(), 3);
        fleet.promote(100);
        assert_eq!((fleet.ready(), fleet.provisioned()), (3, Split { on_demand: 2, spot: 1 }));
        assert!(!fleet.scale_to(101, Split { on_demand: 2, spot: 1 }, 30));
    }
}
