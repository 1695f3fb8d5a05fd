//! Celery's event stream (`events = true`), followed the way Flower and `celery events` follow
//! it: which workers are alive and busy, and exact task counts for the wait objective.
//!
//! ```text
//!  workers ──PUBLISH /{db}.celeryev/<type>──▶ Redis ──PSUBSCRIBE──▶ Subscription (one per broker)
//!                                                                   │ task: wire::decode → State
//!  source A ─ Follower(view "celery@{pod}") ─┐                      │
//!  source B ─ Follower(view "high@{pod}")  ──┴── snapshot(view) ◀───┘
//! ```
//!
//! - **Busy workers** (`busy_hosts`): the running tasks of each live worker the source's
//!   `hostname_pattern` matches, by pod. Unknown — an error, so the loop holds the scale-down —
//!   while the subscription is down, for one expiry window after it (re)subscribes (a live worker
//!   may not have been heard yet), and when no matching worker has been heard at all.
//! - **Load**: `in_flight` = Σ running tasks over those workers (once the state is complete);
//!   `completed` = tasks succeeded, failed or retried; `runtimes` = the succeeded tasks' runtimes;
//!   `arrived` = tasks that reached the queue: those the workers took (`task-received`) plus the
//!   change in those still waiting — `task-received` alone would only count what the workers
//!   could take, which is less than what arrives while a backlog builds. An interval where that
//!   sum falls counts as none, and its deficit is set against the next interval only: an event
//!   still on its way when the queue was read is counted then, and a purge is soon forgotten.
//!   The counts cover every task of the workers the pattern matches, whichever queue it came
//!   from: name a target's workers apart (`hostname_pattern`) when they share a broker.
//! - **Missed events**: the counters count from the first poll of each subscription. When the
//!   subscription is lost and comes back, that poll reports them at 0 again: the estimator sees
//!   its counters go backwards, takes it as a reset and holds scale-downs for its window.
//!   While the subscription is down the counters are left out (the estimate falls back to the
//!   queue depth), and so they are while a worker runs tasks without sending task events.

mod hostname;
mod state;
mod subscription;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use self::hostname::HostnamePattern;
use self::state::{Link, Snapshot, Totals};
use self::subscription::Subscription;
use super::CelerySettings;
use crate::policy::load::Runtimes;
use crate::secret::SecretUrl;
use crate::source::{Reading, SourceError};

/// What the event stream says about a source's workers, at one poll (for `once` and the
/// `queue_autoscaler_celery_event_workers` gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EventsStatus {
    pub subscription: SubscriptionState,
    /// Live workers the source's `hostname_pattern` matches (heard within 2 heartbeat intervals).
    pub workers: u32,
    /// Of those, workers that send task events (the gauge's value).
    pub sending: u32,
    /// Of those, workers seen running tasks without sending task events (`-E` missing).
    pub silent: u32,
    /// Whether this poll's counters came from the events (`false`: the target falls back to
    /// what the queue depth tells, as without `events`).
    pub counted: bool,
}

/// The subscription to the event stream, as [`EventsStatus`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Not subscribed: events are missed; busy workers unknown, counters left out.
    Down,
    /// Subscribed less than one expiry window ago: busy workers not known yet.
    Settling,
    /// Subscribed, and every live worker heard.
    Settled,
}

impl EventsStatus {
    /// Workers whose events the source follows: heard, less those that send no task events
    /// (the value of `queue_autoscaler_celery_event_workers`).
    pub fn sending(&self) -> u32 {
        self.sending
    }

    fn of(snapshot: &Snapshot, counted: bool) -> EventsStatus {
        let subscription = match snapshot.link {
            Link::Down => SubscriptionState::Down,
            Link::Settling { .. } => SubscriptionState::Settling,
            Link::Settled => SubscriptionState::Settled,
        };
        let (workers, silent) = (snapshot.workers, snapshot.silent);
        EventsStatus { subscription, workers, sending: workers.saturating_sub(silent), silent, counted }
    }
}

impl fmt::Display for EventsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subscription {
            SubscriptionState::Down => {
                f.write_str("Celery events: not subscribed (see the log), busy workers unknown")?
            }
            SubscriptionState::Settling => {
                write!(f, "Celery events: subscribed, still hearing from the workers ({} so far)", self.workers)?;
            }
            SubscriptionState::Settled if self.workers == 0 => f.write_str(
                "Celery events: no worker heard, busy workers unknown (workers send heartbeats unless \
                 --without-heartbeat; check hostname_pattern)",
            )?,
            SubscriptionState::Settled => write!(f, "Celery events: {} worker(s) heard", self.workers)?,
        }
        if self.silent > 0 {
            write!(
                f,
                "; {} run tasks without sending task events: start them with -E (worker_send_task_events = True)",
                self.silent
            )?;
        }
        if !self.counted {
            f.write_str("; rates from the queue depth")?;
        }
        Ok(())
    }
}

/// One subscription per broker and channel, shared by the sources on it; held weakly, so that
/// a subscription stops when its last source is dropped.
#[derive(Default)]
pub struct Subscriptions(HashMap<(String, String), Weak<Subscription>>);

impl Subscriptions {
    /// A follower of the event stream `url` and `settings` name, on a shared subscription.
    pub fn follower(
        &mut self,
        url: &SecretUrl,
        settings: &CelerySettings,
        timeout: Duration,
    ) -> Result<Follower, SourceError> {
        let pattern = channel_pattern(settings, subscription::Link::db(url)?);
        self.0.retain(|_, subscription| subscription.strong_count() > 0);
        let key = (url.expose().to_owned(), pattern.clone());
        let subscription = match self.0.get(&key).and_then(Weak::upgrade) {
            Some(subscription) => subscription,
            None => {
                let subscription = Arc::new(Subscription::new(subscription::Link::new(url, pattern, timeout)?));
                self.0.insert(key, Arc::downgrade(&subscription));
                subscription
            }
        };
        let view = subscription.state().register(&settings.hostname_pattern);
        Ok(Follower {
            subscription,
            view,
            hostnames: settings.hostname_pattern.clone(),
            timeout,
            polled: AtomicBool::new(false),
            counts: Mutex::default(),
        })
    }
}

/// The pub/sub pattern kombu's event receiver subscribes to (see `subscription.rs`).
fn channel_pattern(settings: &CelerySettings, db: i64) -> String {
    let fanout_prefix = match &settings.fanout_prefix {
        FanoutPrefix::Enabled(true) => "/{db}.",
        FanoutPrefix::Enabled(false) => "",
        FanoutPrefix::Custom(prefix) => prefix,
    };
    let literal = format!(
        "{}{}{}",
        settings.global_keyprefix,
        fanout_prefix.replace("{db}", &db.to_string()),
        settings.event_exchange
    );
    // PSUBSCRIBE takes a glob: the literal part must match only itself.
    let escaped: String = literal
        .chars()
        .flat_map(|c| if matches!(c, '*' | '?' | '[' | ']' | '\\') { vec!['\\', c] } else { vec![c] })
        .collect();
    if settings.fanout_patterns { format!("{escaped}/*") } else { escaped }
}

/// kombu's `fanout_prefix` transport option: on (`/{db}.`, the default since kombu 4), off (no
/// prefix, kombu 3), or a prefix of one's own (`{db}` is replaced by the db, as kombu does).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum FanoutPrefix {
    Enabled(bool),
    Custom(String),
}

impl Default for FanoutPrefix {
    fn default() -> Self {
        FanoutPrefix::Enabled(true)
    }
}

/// One source's view of a shared subscription: its workers (by `hostname_pattern`) and the
/// counters it reported at its last poll.
pub struct Follower {
    subscription: Arc<Subscription>,
    view: usize,
    hostnames: HostnamePattern,
    timeout: Duration,
    /// Whether the source has polled before (its first poll waits for the workers to be heard).
    polled: AtomicBool,
    counts: Mutex<Counts>,
}

impl Follower {
    /// Before a poll reads the queues: starts the subscription, and on a source's first poll waits,
    /// at most half its timeout, for every worker to be heard (so that `once` can say which are).
    pub async fn prepare(&self) {
        self.subscription.start(self.timeout).await;
        if !self.polled.swap(true, Ordering::Relaxed) {
            let deadline = Instant::now() + self.timeout / 2;
            loop {
                let Link::Settling { remaining } = self.subscription.state().link(Instant::now()) else { break };
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(remaining.min(left)).await;
            }
        }
    }

    /// Adds what the event stream says to a reading of the queues (see the module notes).
    pub fn overlay(&self, reading: &mut Reading) {
        let snapshot = self.subscription.state().snapshot(self.view, Instant::now());
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        reading.skipped += snapshot.unreadable.saturating_sub(counts.unreadable);
        counts.unreadable = snapshot.unreadable;
        let heard = snapshot.workers > 0;
        if snapshot.link == Link::Settled && heard {
            reading.load.in_flight = Some(f64::from(snapshot.active));
        }
        // Counted only while every worker heard sends task events: a worker that does not (or one
        // the pattern misses) would take tasks no `task-received` counts.
        let counted = snapshot.link != Link::Down && heard && snapshot.silent == 0;
        if snapshot.link != Link::Down {
            let totals = counts.count(snapshot.epoch, snapshot.totals, reading.load.waiting);
            if counted {
                reading.load.arrived = Some(totals.arrived);
                reading.load.completed = Some(totals.completed);
                reading.load.runtimes = Some(Runtimes { tasks: totals.succeeded, seconds: totals.runtime_seconds });
            }
        }
        reading.events = Some(EventsStatus::of(&snapshot, counted));
    }

    /// Running tasks per pod; an error while that is unknown (see the module notes). Waits for
    /// the state to settle when that is due within the source's timeout.
    pub async fn busy_hosts(&self) -> Result<BTreeMap<String, u32>, SourceError> {
        self.subscription.start(self.timeout).await;
        loop {
            let snapshot = self.subscription.state().snapshot(self.view, Instant::now());
            match snapshot.link {
                Link::Down => {
                    return Err(SourceError::Connect(
                        "not subscribed to the Celery events (see the log): which workers are busy is unknown".into(),
                    ));
                }
                Link::Settling { remaining } if remaining > self.timeout => {
                    return Err(SourceError::Connect(format!(
                        "subscribed to the Celery events too recently: every worker is heard within {remaining:?}"
                    )));
                }
                Link::Settling { remaining } => tokio::time::sleep(remaining).await,
                Link::Settled if snapshot.workers == 0 => {
                    return Err(SourceError::Query(format!(
                        "no Celery worker named like `{}` is heard on the event stream (workers send heartbeats \
                         unless started with --without-heartbeat): which workers are busy is unknown",
                        self.hostnames
                    )));
                }
                Link::Settled => return Ok(snapshot.busy),
            }
        }
    }
}

/// A source's counters, as reported at its last poll (see the module notes).
#[derive(Debug, Default)]
struct Counts {
    /// The subscription the counters count from.
    epoch: Option<u64>,
    /// The totals at the first poll of that subscription: reported counters start from 0 there.
    base: Totals,
    arrived: u64,
    /// Tasks received (since `base`) and waiting at the last poll.
    last: (u64, u64),
    /// What the last interval counted below zero, set against the next one only.
    debt: u64,
    /// Unreadable messages counted so far (reported as skipped once).
    unreadable: u64,
}

/// The counters one poll reports.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counted {
    arrived: u64,
    completed: u64,
    succeeded: u64,
    runtime_seconds: f64,
}

impl Counts {
    fn count(&mut self, epoch: u64, totals: Totals, waiting: f64) -> Counted {
        // A queue length is a whole number of messages; `as` saturates anything else into range.
        let waiting = waiting.max(0.0) as u64;
        let received = totals.received.saturating_sub(self.base.received);
        if self.epoch != Some(epoch) {
            *self = Counts { epoch: Some(epoch), base: totals, unreadable: self.unreadable, ..Counts::default() };
        } else {
            // Arrived = taken by a worker + the change in those waiting. Below zero when a
            // `task-received` is still on its way as the queue is read (it comes next interval:
            // hence the debt, repaid then) or when the queue was purged (forgotten after one
            // interval, so that a purge cannot hide the arrivals after it).
            let taken = received.saturating_sub(self.last.0);
            let own = i128::from(taken) + i128::from(waiting) - i128::from(self.last.1);
            let net = own - i128::from(self.debt);
            self.arrived = self.arrived.saturating_add(u64::try_from(net).unwrap_or(0));
            self.debt = if net >= 0 { 0 } else { u64::try_from(-own).unwrap_or(0) };
        }
        self.last = (totals.received.saturating_sub(self.base.received), waiting);
        Counted {
            arrived: self.arrived,
            completed: totals.completed.saturating_sub(self.base.completed),
            succeeded: totals.succeeded.saturating_sub(self.base.succeeded),
            runtime_seconds: (totals.runtime_seconds - self.base.runtime_seconds).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests;
