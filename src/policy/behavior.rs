//! HPA scaling behavior: stabilization windows and rate policies, as the upstream controller's
//! `normalizeDesiredReplicasWithBehaviors` implements them
//! (kubernetes `pkg/controller/podautoscaler/horizontal.go`).
//!
//! Like the HPA, the history lives in memory and is seeded with the current replicas when a
//! target is first seen, so a restart forgets it.

use std::collections::VecDeque;
use std::time::Duration;

use super::load::{Fleet, Load, Tracker};
use super::objective::{self, Objective, Prediction};
use super::startup::StartupClock;
use super::{Bound, Inputs, Limit, RatePolicy, RateUnit, ScalingRules, Select, TargetPolicy};

/// What the time-based rules of one target remember between decisions.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Raw recommendations (before limits), as the two window extremes need them.
    recommendations: Extremes,
    /// Sizes of applied scale-ups and scale-downs, for the rate policies' periods.
    up_events: Vec<Stamped>,
    down_events: Vec<Stamped>,
    last_rescale: Option<Duration>,
    /// Consecutive polls in which at least one trigger failed.
    failures: u32,
    seeded: bool,
    /// With an objective: the load estimator of each trigger, by source name.
    trackers: Vec<(String, Tracker)>,
    /// The start-up delay, learned from ready replicas after scale-ups.
    startup: StartupClock,
}

#[derive(Debug, Clone, Copy)]
struct Stamped {
    value: u32,
    at: Duration,
}

/// Whether something stamped `at` is inside a window of `window` ending `now`
/// (the HPA's `timestamp.After(now - window)`).
fn within(at: Duration, window: Duration, now: Duration) -> bool {
    at + window > now
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consecutive polls with a failed trigger, up to now.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the last rescale was applied.
    pub fn last_rescale(&self) -> Option<Duration> {
        self.last_rescale
    }

    /// Remembers an applied rescale from `from` to `to` replicas, for rate policies and cooldown.
    pub fn record_rescale(&mut self, policy: &TargetPolicy, from: u32, to: u32, now: Duration) {
        let (events, rules, change) = if to > from {
            (&mut self.up_events, &policy.scale_up, to - from)
        } else {
            (&mut self.down_events, &policy.scale_down, from - to)
        };
        let keep = rules.longest_period();
        events.retain(|e| within(e.at, keep, now));
        if change > 0 {
            events.push(Stamped { value: change, at: now });
        }
        self.last_rescale = Some(now);
        self.startup.rescaled(from, to, now);
    }

    pub(super) fn observe_ready(&mut self, ready: Option<u32>, now: Duration) {
        self.startup.observe(ready, now);
    }

    /// The objective's prediction for one trigger, its load estimate brought up to date.
    pub(super) fn predict(
        &mut self,
        objective: &Objective,
        source: &str,
        load: Load,
        inputs: &Inputs,
        max: u32,
    ) -> Prediction {
        let ready = inputs.ready.unwrap_or(inputs.current);
        let fleet = Fleet { ready, slots: objective.slots, prior_task_seconds: objective.task_seconds };
        let index = match self.trackers.iter().position(|(name, _)| name == source) {
            Some(index) => index,
            None => {
                self.trackers.push((source.to_owned(), Tracker::new()));
                self.trackers.len() - 1
            }
        };
        let estimate = self.trackers[index].1.observe(load, fleet, inputs.now);
        let startup = self.startup.delay(objective.startup);
        objective::size(objective, estimate, inputs.current, ready, startup, max)
    }

    /// First sight of a target: the HPA's `recordInitialRecommendation(current)`.
    pub(super) fn seed(&mut self, current: u32, now: Duration) {
        if !self.seeded {
            self.recommendations.push(Stamped { value: current, at: now });
            self.seeded = true;
        }
    }

    pub(super) fn count_failures(&mut self, failed: bool) {
        self.failures = if failed { self.failures.saturating_add(1) } else { 0 };
    }

    pub(super) fn cooldown_remaining(&self, cooldown: Duration, now: Duration) -> Option<Duration> {
        let last = self.last_rescale?;
        (last + cooldown > now).then(|| last + cooldown - now)
    }

    /// Stabilizes `desired`, then limits it by the rate policies and the bounds.
    pub(super) fn normalize(
        &mut self,
        policy: &TargetPolicy,
        current: u32,
        desired: u32,
        now: Duration,
    ) -> (u32, Option<Limit>) {
        let stabilized = self.stabilize(policy, current, desired, now);
        let stabilization = match stabilized.cmp(&desired) {
            std::cmp::Ordering::Less => Some(Limit::UpStabilized { window: policy.scale_up.stabilization }),
            std::cmp::Ordering::Greater => Some(Limit::DownStabilized { window: policy.scale_down.stabilization }),
            std::cmp::Ordering::Equal => None,
        };
        let (limited, rate) = self.rate_limit(policy, current, stabilized, now);
        (limited, rate.or(stabilization))
    }

    /// Scale up only to the lowest recommendation in the up window, down only to the highest
    /// in the down window; then remember the raw `desired`.
    fn stabilize(&mut self, policy: &TargetPolicy, current: u32, desired: u32, now: Duration) -> u32 {
        let (up_window, down_window) = (policy.scale_up.stabilization, policy.scale_down.stabilization);
        let (lowest, highest) = self.recommendations.extremes(up_window, down_window, now);
        let up = lowest.map_or(desired, |l| l.min(desired));
        let down = highest.map_or(desired, |h| h.max(desired));
        self.recommendations.push(Stamped { value: desired, at: now });
        current.max(up).min(down)
    }

    fn rate_limit(&self, policy: &TargetPolicy, current: u32, desired: u32, now: Duration) -> (u32, Option<Limit>) {
        if desired > current {
            let (limit, chosen) = self.up_limit(&policy.scale_up, current, now);
            // From zero a percent policy allows nothing (any percent of 0 is 0): the first replica
            // always comes, as KEDA's operator scales 0 → 1 outside the HPA.
            let limit = if current == 0 { limit.max(1) } else { limit };
            let allowed = limit.max(current).min(policy.max_replicas);
            if desired <= allowed {
                return (desired, None);
            }
            let why = match chosen {
                _ if allowed == policy.max_replicas => Limit::Bound(Bound::Max(policy.max_replicas)),
                Some(rate) => Limit::UpPolicy { policy: rate, allowed },
                None => Limit::UpDisabled,
            };
            (allowed, Some(why))
        } else if desired < current {
            let (limit, chosen) = self.down_limit(&policy.scale_down, current, now);
            let allowed = limit.min(current).max(policy.min_replicas);
            if desired >= allowed {
                return (desired, None);
            }
            let why = match chosen {
                _ if allowed == policy.min_replicas => Limit::Bound(Bound::Min(policy.min_replicas)),
                Some(rate) => Limit::DownPolicy { policy: rate, allowed },
                None => Limit::DownDisabled,
            };
            (allowed, Some(why))
        } else {
            (desired, None)
        }
    }

    /// The replicas at the start of `period`: current minus what was added plus what was removed.
    fn period_start(&self, current: u32, period: Duration, now: Duration) -> i64 {
        let sum = |events: &[Stamped]| -> i64 {
            events.iter().filter(|e| within(e.at, period, now)).map(|e| i64::from(e.value)).sum()
        };
        i64::from(current) - sum(&self.up_events) + sum(&self.down_events)
    }

    /// The highest count the scale-up policies allow now, and the policy that set it.
    fn up_limit(&self, rules: &ScalingRules, current: u32, now: Duration) -> (u32, Option<RatePolicy>) {
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(current, p.period, now);
            let proposed = match p.unit {
                RateUnit::Pods => start + i64::from(p.value),
                RateUnit::Percent => (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64,
            };
            (proposed, *p)
        });
        pick(rules.select, proposals, current, true)
    }

    /// The lowest count the scale-down policies allow now, and the policy that set it.
    fn down_limit(&self, rules: &ScalingRules, current: u32, now: Duration) -> (u32, Option<RatePolicy>) {
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(current, p.period, now);
            let proposed = match p.unit {
                RateUnit::Pods => start - i64::from(p.value),
                // The HPA truncates toward zero: int32(float64(start) * (1 - value/100)).
                RateUnit::Percent => (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64,
            };
            (proposed, *p)
        });
        pick(rules.select, proposals, current, false)
    }
}

/// The lowest recommendation of the last `up window` and the highest of the last `down window`,
/// kept by two monotonic queues: amortized O(1) per decision, whatever the windows' lengths (a
/// 300 s window of 1 s polls would otherwise be scanned whole at every poll).
#[derive(Debug, Clone, Default)]
struct Extremes {
    /// Increasing values, oldest first: the front is the lowest still in the window.
    lows: VecDeque<Stamped>,
    /// Decreasing values, oldest first: the front is the highest still in the window.
    highs: VecDeque<Stamped>,
}

impl Extremes {
    fn push(&mut self, new: Stamped) {
        // A recommendation older and no lower than a newer one can never again be the lowest
        // (it leaves the window first); likewise for the highest.
        while self.lows.back().is_some_and(|r| r.value >= new.value) {
            self.lows.pop_back();
        }
        while self.highs.back().is_some_and(|r| r.value <= new.value) {
            self.highs.pop_back();
        }
        self.lows.push_back(new);
        self.highs.push_back(new);
    }

    /// Drops what has left each window, then reads the extremes (`None`: nothing in a window).
    fn extremes(&mut self, up_window: Duration, down_window: Duration, now: Duration) -> (Option<u32>, Option<u32>) {
        while self.lows.front().is_some_and(|r| !within(r.at, up_window, now)) {
            self.lows.pop_front();
        }
        while self.highs.front().is_some_and(|r| !within(r.at, down_window, now)) {
            self.highs.pop_front();
        }
        (self.lows.front().map(|r| r.value), self.highs.front().map(|r| r.value))
    }
}

/// Picks the proposal `select` asks for: for scale-up `Max` means the highest count, for
/// scale-down `Max` means the largest change, i.e. the lowest count. `Disabled` allows no change.
fn pick(
    select: Select,
    proposals: impl Iterator<Item = (i64, RatePolicy)>,
    current: u32,
    up: bool,
) -> (u32, Option<RatePolicy>) {
    let highest = match select {
        Select::Disabled => return (current, None),
        Select::Max => up,
        Select::Min => !up,
    };
    // On a tie the first policy wins, so reasons name policies in the order they were written.
    let best = proposals.reduce(|best, next| {
        let better = if highest { next.0 > best.0 } else { next.0 < best.0 };
        if better { next } else { best }
    });
    match best {
        Some((n, policy)) => (n.clamp(0, i64::from(u32::MAX)) as u32, Some(policy)),
        // No policy in this direction (an objective's default scale-up): no rate limit.
        None if up => (u32::MAX, None),
        None => (0, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle: the window extremes by scanning every recommendation ever pushed.
    fn scanned(pushed: &[Stamped], up: Duration, down: Duration, now: Duration) -> (Option<u32>, Option<u32>) {
        let lowest = pushed.iter().filter(|r| within(r.at, up, now)).map(|r| r.value).min();
        let highest = pushed.iter().filter(|r| within(r.at, down, now)).map(|r| r.value).max();
        (lowest, highest)
    }

    /// splitmix64: a seeded generator, so a failure names the seed that reproduces it.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        }
    }

    #[test]
    fn monotonic_windows_agree_with_a_full_scan() {
        for seed in 0..300 {
            let mut random = Random(seed);
            // Both windows non-zero and usually different, so a mix-up of the two shows.
            let up = Duration::from_secs(1 + random.below(90));
            let down = Duration::from_secs(1 + random.below(400));
            let (mut extremes, mut pushed, mut now) = (Extremes::default(), Vec::new(), Duration::ZERO);
            for step in 0..400 {
                // Polls 0–30 s apart (0: several decisions at one instant); few distinct values, many ties.
                now += Duration::from_secs(random.below(31));
                let expected = scanned(&pushed, up, down, now);
                let found = extremes.extremes(up, down, now);
                assert_eq!(found, expected, "seed {seed}, step {step}, windows up {up:?} down {down:?}, at {now:?}");
                if random.below(5) > 0 {
                    let new = Stamped { value: random.below(12) as u32, at: now };
                    extremes.push(new);
                    pushed.push(new);
                }
            }
        }
    }
}
