//! What the event stream says about the workers of one broker: pure state, fed events and the
//! time they arrived, asked for a snapshot per hostname pattern. No I/O, no clock reads.
//!
//! It follows celery's own `celery/events/state.py`:
//! - a worker is known by its hostname; `worker-online` and `worker-heartbeat` carry its `active`
//!   and `processed` counts and its heartbeat interval `freq`; `worker-offline` removes it;
//! - a worker is alive until `2 × freq` after the last event heard from it (`Worker.alive`,
//!   `heartbeat_expires` with `HEARTBEAT_EXPIRE_WINDOW = 200` %), timed by when events arrive
//!   here (`local_received`), so the clocks of the workers do not matter;
//! - task events also prove a worker alive, and create it if it was not heard of yet.
//!
//! Between heartbeats, a worker's busy count follows its task events: the heartbeat's `active`
//! plus tasks started minus tasks finished since. Task events travel in buffers that a heartbeat
//! can overtake (`EventDispatcher` buffers the `task` group), so this may count a task twice
//! until the next heartbeat: an over-count, which keeps a pod, never an under-count.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::hostname::HostnamePattern;
use super::wire::{Event, TaskEvent};

/// A worker's heartbeat interval when it does not say (celery `celery/worker/heartbeat.py`,
/// `Heart`: 2 s), and the shortest one assumed when deciding the state is complete.
pub const DEFAULT_FREQ: f64 = 2.0;
/// A worker is gone after this many heartbeat intervals without an event
/// (`HEARTBEAT_EXPIRE_WINDOW` in celery `celery/events/state.py`, 200 %).
pub const EXPIRE_WINDOW: f64 = 2.0;

/// Tasks counted by the events of the workers one pattern covers, since the subscription began.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    /// `task-received`: taken from the queue by a worker.
    pub received: u64,
    /// `task-succeeded`, `task-failed` and `task-retried`: runs that ended.
    pub completed: u64,
    /// `task-succeeded`: how many, and the sum of their `runtime`s.
    pub succeeded: u64,
    pub runtime_seconds: f64,
}

/// Whether the state can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not subscribed: events are being missed.
    Down,
    /// Subscribed, but not yet for one expiry window: a live worker may not have been heard yet.
    Settling { remaining: Duration },
    /// Subscribed for at least one expiry window: every live worker has been heard.
    Settled,
}

/// What one pattern's workers look like now.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub link: Link,
    /// Which subscription the totals count from (it changes on every (re)subscription).
    pub epoch: u64,
    pub totals: Totals,
    /// Live workers the pattern matches.
    pub workers: u32,
    /// Of those, workers whose heartbeats show tasks run but that sent no task event: started
    /// without `-E` (`worker_send_task_events`).
    pub silent: u32,
    /// Tasks running on them.
    pub active: u32,
    /// Running tasks per pod (what `{pod}` matched), pods with none left out.
    pub busy: BTreeMap<String, u32>,
    /// Messages that could not be read, over the life of the state.
    pub unreadable: u64,
}

#[derive(Debug)]
struct Worker {
    freq: f64,
    heard: Instant,
    /// `active` at the last heartbeat (0 before one).
    active: u32,
    /// Tasks started minus tasks finished since that heartbeat.
    since_beat: i64,
    /// `processed` at the first heartbeat heard, the previous and the last.
    processed: Option<(u64, u64, u64)>,
    task_events: bool,
    /// The patterns (indexes into `State::views`) matching this hostname.
    views: Vec<usize>,
}

impl Worker {
    fn new(hostname: &str, now: Instant, views: &[View]) -> Worker {
        Worker {
            freq: DEFAULT_FREQ,
            heard: now,
            active: 0,
            since_beat: 0,
            processed: None,
            task_events: false,
            views: matching(views, hostname),
        }
    }

    fn alive(&self, now: Instant) -> bool {
        now < self.heard + Duration::from_secs_f64(self.freq * EXPIRE_WINDOW)
    }

    fn busy(&self) -> u32 {
        u32::try_from((i64::from(self.active) + self.since_beat).max(0)).unwrap_or(u32::MAX)
    }

    /// Tasks were accepted before its previous heartbeat — a heartbeat interval ago, time enough
    /// for their buffered events to arrive — and none came.
    fn silent(&self) -> bool {
        !self.task_events && self.processed.is_some_and(|(first, previous, _)| previous > first)
    }
}

#[derive(Debug)]
struct View {
    pattern: HostnamePattern,
    totals: Totals,
}

/// The workers of one broker, and the task totals of each registered pattern.
#[derive(Debug, Default)]
pub struct State {
    /// When the current subscription began; `None` while down.
    since: Option<Instant>,
    epoch: u64,
    workers: HashMap<String, Worker>,
    views: Vec<View>,
    /// The longest heartbeat interval heard on this broker, at least [`DEFAULT_FREQ`].
    longest_freq: f64,
    unreadable: u64,
}

impl State {
    pub fn new() -> State {
        State { longest_freq: DEFAULT_FREQ, ..State::default() }
    }

    /// Registers a pattern (once per distinct pattern) and returns its index for [`State::snapshot`].
    pub fn register(&mut self, pattern: &HostnamePattern) -> usize {
        if let Some(index) = self.views.iter().position(|v| v.pattern == *pattern) {
            return index;
        }
        let index = self.views.len();
        for (hostname, worker) in &mut self.workers {
            if pattern.pod(hostname).is_some() {
                worker.views.push(index);
            }
        }
        self.views.push(View { pattern: pattern.clone(), totals: Totals::default() });
        index
    }

    /// A new subscription: what was known came from events that may since have been missed.
    pub fn subscribed(&mut self, now: Instant) {
        self.since = Some(now);
        self.epoch += 1;
        self.workers.clear();
        for view in &mut self.views {
            view.totals = Totals::default();
        }
    }

    /// The subscription is lost.
    pub fn lost(&mut self) {
        self.since = None;
        self.workers.clear();
    }

    /// Counts a message that could not be read.
    pub fn unreadable(&mut self) {
        self.unreadable += 1;
    }

    /// Takes in one event, received at `now`.
    pub fn apply(&mut self, event: &Event<'_>, now: Instant) {
        match event {
            Event::Heartbeat { hostname, freq, active, processed } => {
                self.longest_freq = self.longest_freq.max(*freq);
                let Some(worker) = self.heard(hostname, now) else { return };
                worker.freq = *freq;
                worker.active = *active;
                worker.since_beat = 0;
                worker.processed = Some(match worker.processed {
                    None => (*processed, *processed, *processed),
                    Some((first, _, last)) => (first, last, *processed),
                });
            }
            Event::Offline { hostname } => {
                self.workers.remove(hostname.as_ref());
            }
            Event::Task { hostname, kind } => self.task(hostname, *kind, now),
        }
    }

    fn task(&mut self, hostname: &str, kind: TaskEvent, now: Instant) {
        let Some(worker) = self.heard(hostname, now) else { return };
        worker.task_events = true;
        match kind {
            TaskEvent::Started => worker.since_beat += 1,
            TaskEvent::Succeeded { .. } | TaskEvent::Failed | TaskEvent::Retried => worker.since_beat -= 1,
            TaskEvent::Received | TaskEvent::Other => {}
        }
        let Some(worker) = self.workers.get(hostname) else { return };
        for index in &worker.views {
            let Some(totals) = self.views.get_mut(*index).map(|v| &mut v.totals) else { continue };
            match kind {
                TaskEvent::Received => totals.received += 1,
                TaskEvent::Succeeded { runtime } => {
                    totals.completed += 1;
                    totals.succeeded += 1;
                    totals.runtime_seconds += runtime;
                }
                TaskEvent::Failed | TaskEvent::Retried => totals.completed += 1,
                TaskEvent::Started | TaskEvent::Other => {}
            }
        }
    }

    /// The worker `hostname`, heard from at `now` (created if new; `None` cannot happen).
    fn heard(&mut self, hostname: &str, now: Instant) -> Option<&mut Worker> {
        // Looked up by &str first: a String is allocated only for a worker not seen before.
        if !self.workers.contains_key(hostname) {
            let worker = Worker::new(hostname, now, &self.views);
            self.workers.insert(hostname.to_owned(), worker);
        }
        let worker = self.workers.get_mut(hostname)?;
        worker.heard = now;
        Some(worker)
    }

    /// The workers of pattern `view` at `now`, after forgetting the workers gone silent.
    pub fn snapshot(&mut self, view: usize, now: Instant) -> Snapshot {
        self.workers.retain(|_, worker| worker.alive(now));
        let mut snapshot = Snapshot {
            link: self.link(now),
            epoch: self.epoch,
            totals: self.views.get(view).map(|v| v.totals).unwrap_or_default(),
            workers: 0,
            silent: 0,
            active: 0,
            busy: BTreeMap::new(),
            unreadable: self.unreadable,
        };
        let Some(pattern) = self.views.get(view).map(|v| &v.pattern) else { return snapshot };
        for (hostname, worker) in self.workers.iter().filter(|(_, w)| w.views.contains(&view)) {
            snapshot.workers += 1;
            snapshot.silent += u32::from(worker.silent());
            let busy = worker.busy();
            snapshot.active = snapshot.active.saturating_add(busy);
            if let Some(pod) = pattern.pod(hostname).filter(|_| busy > 0) {
                let tasks = snapshot.busy.entry(pod.to_owned()).or_default();
                *tasks = tasks.saturating_add(busy);
            }
        }
        snapshot
    }

    /// Whether the state can be trusted at `now`.
    pub fn link(&self, now: Instant) -> Link {
        let Some(since) = self.since else { return Link::Down };
        let settled_at = since + Duration::from_secs_f64(self.longest_freq * EXPIRE_WINDOW);
        match settled_at.checked_duration_since(now) {
            Some(remaining) if !remaining.is_zero() => Link::Settling { remaining },
            _ => Link::Settled,
        }
    }
}

/// The indexes of the views whose pattern matches `hostname`.
fn matching(views: &[View], hostname: &str) -> Vec<usize> {
    views.iter().enumerate().filter(|(_, v)| v.pattern.pod(hostname).is_some()).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests;
