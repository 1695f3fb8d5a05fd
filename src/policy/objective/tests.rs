//! The objective driven through `decide` against a fluid world: arrivals at a known rate, tasks
//! of a known mean duration, replicas ready after a start-up delay; each source kind sees what it
//! would really report.

use std::time::Duration;

use crate::policy::load::DOWN_WINDOW;
use crate::policy::{
    Fallback, History, Inputs, Load, Objective, Observation, Pause, Sample, ScalingRules, TargetPolicy, TriggerPolicy,
    decide,
};

/// What a source of each kind reports from the same world.
#[derive(Debug, Clone, Copy, PartialEq)]
enum View {
    /// Lag (waiting + in flight) with end and committed offsets.
    Kafka,
    /// Queued and running apart, and completions.
    Airflow,
    /// Waiting and, with `include_unacked`, in flight.
    CeleryUnacked,
    /// Waiting only.
    CeleryDepth,
}

struct World {
    view: View,
    slots: u32,
    task_seconds: f64,
    startup: u64,
    waiting: f64,
    in_flight: f64,
    arrived: f64,
    completed: f64,
    ready: u32,
    /// Seconds at which starting replicas become ready.
    starting: Vec<u64>,
    /// Cumulative arrivals and starts at the end of each second, for FIFO waits.
    arrivals_log: Vec<f64>,
    starts_log: Vec<f64>,
    started: f64,
    policy: TargetPolicy,
    history: History,
    /// Replicas after each decision.
    decisions: Vec<(u64, u32)>,
}

fn objective(max_wait: u64, slots: u32, task_seconds: f64, startup: u64) -> Objective {
    Objective {
        max_wait: Duration::from_secs(max_wait),
        slots,
        task_seconds: Some(task_seconds),
        startup: Duration::from_secs(startup),
        hysteresis: Objective::DEFAULT_HYSTERESIS,
    }
}

fn policy(objective: Objective, min: u32, max: u32) -> TargetPolicy {
    TargetPolicy {
        min_replicas: min,
        max_replicas: max,
        triggers: vec![TriggerPolicy { source: "q".into(), per_replica: None, activation: 0.0 }],
        scale_up: ScalingRules::unlimited(),
        scale_down: ScalingRules::objective_scale_down(),
        cooldown: Duration::ZERO,
        fallback_threshold: 1000,
        fallback: Fallback::Hold,
        objective: Some(objective),
    }
}

impl World {
    /// A world in steady state at `replicas` ready, `in_flight` tasks running.
    fn new(view: View, policy: TargetPolicy, replicas: u32, in_flight: f64) -> World {
        let objective = policy.objective.clone().expect("an objective target");
        World {
            view,
            slots: objective.slots,
            task_seconds: objective.task_seconds.expect("a prior"),
            startup: objective.startup.as_secs(),
            waiting: 0.0,
            in_flight,
            arrived: 0.0,
            completed: 0.0,
            ready: replicas,
            starting: Vec::new(),
            arrivals_log: Vec::new(),
            starts_log: Vec::new(),
            started: 0.0,
            policy,
            history: History::new(),
            decisions: Vec::new(),
        }
    }

    fn provisioned(&self) -> u32 {
        self.ready + self.starting.len() as u32
    }

    /// One second: tasks finish, arrive, start on free ready slots.
    fn second(&mut self, t: u64, arrivals: f64) {
        self.ready += self.starting.iter().filter(|at| **at == t).count() as u32;
        self.starting.retain(|at| *at > t);
        // Fluid tasks finish exponentially; the last fraction of one counts as finished.
        let done = if self.in_flight < 0.5 { self.in_flight } else { self.in_flight / self.task_seconds };
        self.in_flight -= done;
        self.completed += done;
        self.waiting += arrivals;
        self.arrived += arrivals;
        let free = (f64::from(self.ready * self.slots) - self.in_flight).max(0.0);
        let start = self.waiting.min(free);
        self.waiting -= start;
        self.in_flight += start;
        self.started += start;
        self.arrivals_log.push(self.arrived);
        self.starts_log.push(self.started);
    }

    fn observation(&self) -> Observation {
        let (w, f) = (self.waiting, self.in_flight);
        let load = match self.view {
            View::Kafka => Load {
                waiting: w + f,
                arrived: Some(self.arrived as u64),
                completed: Some(self.completed as u64),
                ..Load::default()
            },
            View::Airflow => {
                Load { waiting: w, in_flight: Some(f), completed: Some(self.completed as u64), ..Load::default() }
            }
            View::CeleryUnacked => Load { waiting: w, in_flight: Some(f), ..Load::default() },
            View::CeleryDepth => Load { waiting: w, ..Load::default() },
        };
        Observation::Answered(Sample { value: load.waiting, cap: None, even: false, load })
    }

    fn decide(&mut self, t: u64, observation: Observation) -> u32 {
        let current = self.provisioned();
        let observations = [observation];
        let inputs =
            Inputs { current, ready: Some(self.ready), observations: &observations, pause: Pause::None, now: secs(t) };
        let decision = decide(&self.policy, &mut self.history, &inputs);
        if decision.should_write(current) {
            self.history.record_rescale(&self.policy, current, decision.replicas, secs(t));
            self.scale_to(t, decision.replicas);
        }
        self.decisions.push((t, decision.replicas));
        decision.replicas
    }

    fn scale_to(&mut self, t: u64, replicas: u32) {
        while self.provisioned() < replicas {
            self.starting.push(t + self.startup);
        }
        while self.provisioned() > replicas {
            if self.starting.pop().is_none() {
                self.ready -= 1;
            }
        }
    }

    /// Runs seconds `from..to`, deciding every `every` seconds.
    fn run(&mut self, from: u64, to: u64, every: u64, rate: impl Fn(u64) -> f64) {
        for t in from..to {
            self.second(t, rate(t));
            if t % every == 0 {
                self.decide(t, self.observation());
            }
        }
    }

    /// The longest FIFO wait of the tasks that arrived in seconds `from..to`.
    fn longest_wait(&self, from: u64, to: u64) -> u64 {
        (from..to)
            .filter(|t| *t == 0 || self.arrivals_log[*t as usize] > self.arrivals_log[*t as usize - 1] + 1e-9)
            .map(|t| {
                let needed = self.arrivals_log[t as usize] - 1e-6;
                let started = self.starts_log.iter().skip(t as usize).position(|s| *s >= needed);
                started.map_or(u64::MAX, |s| s as u64)
            })
            .max()
            .unwrap_or(0)
    }

    /// The wait (whole seconds) that the share `q` of the tasks that arrived in `from..to` did
    /// not exceed (fluid: each second's arrivals weigh what arrived in it).
    fn wait_quantile(&self, from: u64, to: u64, q: f64) -> u64 {
        let mut waits: Vec<(u64, f64)> = (from..to)
            .map(|t| {
                let arrived =
                    self.arrivals_log[t as usize] - if t == 0 { 0.0 } else { self.arrivals_log[t as usize - 1] };
                (self.longest_wait(t, t + 1), arrived)
            })
            .collect();
        waits.sort_by_key(|(w, _)| *w);
        let total: f64 = waits.iter().map(|(_, n)| n).sum();
        let mut seen = 0.0;
        for (wait, n) in waits {
            seen += n;
            if seen >= q * total {
                return wait;
            }
        }
        0
    }

    fn replicas_between(&self, from: u64, to: u64) -> Vec<u32> {
        self.decisions.iter().filter(|(t, _)| (from..to).contains(t)).map(|(_, r)| *r).collect()
    }

    /// Times the replicas went up after having gone down (or down after up).
    fn reversals(&self) -> usize {
        let steps: Vec<i64> =
            self.decisions.windows(2).map(|w| i64::from(w[1].1) - i64::from(w[0].1)).filter(|d| *d != 0).collect();
        steps.windows(2).filter(|w| w[0].signum() != w[1].signum()).count()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn steady_arrivals_with_an_empty_queue_keep_the_capacity_they_need() {
    // 5.2 tasks/s of 30 s: 156 busy slots, ~nothing waiting. The ratio formula reads a queue of
    // ~0 and wants 1 replica; what the arrivals need is ≥ 156 / 16 → 10.
    for view in [View::Kafka, View::Airflow, View::CeleryUnacked] {
        let mut world = World::new(view, policy(objective(60, 16, 30.0, 90), 1, 50), 12, 156.0);
        world.run(0, 7200, 15, |_| 5.2);
        let late = world.replicas_between(3600, 7200);
        assert!(late.iter().all(|r| (10..=12).contains(r)), "{view:?}: {late:?}");
        assert!(world.longest_wait(600, 7000) <= 60, "{view:?}: {}", world.longest_wait(600, 7000));
        assert_eq!(world.reversals(), 0, "{view:?}: {:?}", world.decisions);
    }
}

#[test]
fn depth_alone_probes_down_and_keeps_the_wait() {
    // Celery without unacked sees nothing while the workers keep up: it gives capacity back
    // slowly until a queue forms, reads the rate from it, and sizes again.
    let mut world = World::new(View::CeleryDepth, policy(objective(60, 16, 30.0, 90), 1, 50), 14, 156.0);
    world.run(0, 4 * 3600, 15, |_| 5.2);
    let late = world.replicas_between(3600, 4 * 3600);
    let mean = late.iter().map(|r| f64::from(*r)).sum::<f64>() / late.len() as f64;
    assert!(late.iter().all(|r| *r >= 8) && mean <= 11.0, "{late:?}");
    // A probe that goes below the load makes a queue that lasts the start-up delay: the p95
    // holds, the longest waits are a little beyond it.
    let (p95, longest) = (world.wait_quantile(600, 4 * 3600 - 600, 0.95), world.longest_wait(600, 4 * 3600 - 600));
    assert!(p95 <= 60 && longest <= 120, "p95 {p95}, longest {longest}");
}

#[test]
fn a_burst_is_drained_within_the_objective() {
    // 1 task/s of 10 s on 4-slot replicas; 2,000 tasks land at once at t = 1,200 s. With a 30 s
    // start-up, two minutes is reachable only by scaling out wide at once.
    let policy = policy(objective(120, 4, 10.0, 30), 1, 100);
    let mut world = World::new(View::Kafka, policy, 3, 10.0);
    world.run(0, 3600, 5, |t| if t == 1200 { 2001.0 } else { 1.0 });
    let burst = world.longest_wait(1200, 1201);
    assert!(burst <= 120 + 5, "drained within the objective (plus the poll that first sees it): {burst} s");
    let peak = world.replicas_between(1200, 1400).into_iter().max().unwrap_or(0);
    assert!(peak >= 40, "scaled out for it: {peak}");
    let after = world.replicas_between(2400, 3600);
    assert!(after.iter().all(|r| *r <= 5), "and back to what 1/s needs: {after:?}");
}

#[test]
fn a_falling_rate_scales_down_without_flapping() {
    // 8/s falling to 2/s over an hour, with ±20 % noise on every second's arrivals.
    let noise = |t: u64| {
        let x = (t.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
        0.8 + 0.4 * x
    };
    let rate = |t: u64| (8.0 - 6.0 * (t.min(3600) as f64 / 3600.0)) * noise(t);
    let mut world = World::new(View::Airflow, policy(objective(60, 16, 30.0, 90), 1, 50), 16, 240.0);
    world.run(0, 3 * 3600, 15, rate);
    let start = world.replicas_between(600, 700);
    let end = world.replicas_between(3 * 3600 - 600, 3 * 3600);
    assert!(start.iter().all(|r| *r >= 15) && end.iter().all(|r| (4..=6).contains(r)), "{start:?} … {end:?}");
    assert_eq!(world.reversals(), 0, "only ever down: {:?}", world.decisions);
    assert!(world.longest_wait(600, 3 * 3600 - 300) <= 60);
}

#[test]
fn a_failed_or_implausible_estimate_never_scales_down() {
    // Failed polls: held, for as long as they fail (the fallback threshold is out of reach here).
    let mut world = World::new(View::Kafka, policy(objective(60, 16, 30.0, 90), 1, 50), 20, 156.0);
    world.run(0, 90, 15, |_| 5.2);
    for t in (90..1200).step_by(15) {
        assert_eq!(world.decide(t, Observation::Failed), 20, "a failed poll at {t}");
    }
    // Twice the replicas needed: the first scale-down comes once the rates have been watched for
    // a window. A counter that goes backwards just before, or a NaN, restarts that watch.
    let window = DOWN_WINDOW.as_secs();
    let disturbed = window - 15;
    let control = settled_until(disturbed, window + 120, |_| {});
    assert!(control.replicas_between(window, window + 20).iter().all(|r| *r < 20), "{:?}", control.decisions);
    let reset = settled_until(disturbed, window + 120, |world| {
        world.arrived = 0.0;
        world.completed = 0.0;
    });
    let held = disturbed + window;
    assert!(reset.replicas_between(0, held).iter().all(|r| *r == 20), "{:?}", reset.decisions);
    assert!(reset.replicas_between(held, held + 30).iter().any(|r| *r < 20), "{:?}", reset.decisions);
    let mut nonsense = settled_until(disturbed, disturbed, |_| {});
    let nan = Load { waiting: f64::NAN, ..Load::default() };
    let replicas = nonsense
        .decide(disturbed, Observation::Answered(Sample { value: f64::NAN, cap: None, even: false, load: nan }));
    assert_eq!(replicas, 20);
    nonsense.run(disturbed + 1, held, 15, |_| 5.2);
    assert!(nonsense.replicas_between(0, held).iter().all(|r| *r == 20), "{:?}", nonsense.decisions);
}

/// 20 replicas for a load that needs 10, run to `until` with a disturbance at `at` seconds.
fn settled_until(at: u64, until: u64, disturb: impl Fn(&mut World)) -> World {
    let mut world = World::new(View::Kafka, policy(objective(60, 16, 30.0, 90), 1, 50), 20, 156.0);
    world.run(0, at, 15, |_| 5.2);
    disturb(&mut world);
    world.run(at, until, 15, |_| 5.2);
    world
}

#[test]
fn a_constant_rate_settles_and_stays() {
    for (rate, start) in [(0.5, 1), (3.0, 30), (12.0, 2), (12.0, 40)] {
        let mut world = World::new(View::Airflow, policy(objective(45, 8, 20.0, 60), 1, 60), start, 0.0);
        world.run(0, 5400, 15, |_| rate);
        let late = world.replicas_between(1800, 5400);
        assert!(late.windows(2).all(|w| w[0] == w[1]), "rate {rate} from {start}: {late:?}");
        // At least what the load needs; at most the top of the hysteresis band (a fleet that
        // overshot while catching up stays where fewer would not serve (1 + h) × the rate).
        let needed = (rate * 20.0 / 8.0).ceil() as u32;
        let band = (rate * (1.0 + Objective::DEFAULT_HYSTERESIS) * 20.0 / 8.0).ceil() as u32 + 1;
        assert!(late[0] >= needed && late[0] <= band, "rate {rate} from {start}: {late:?}");
    }
}

#[test]
fn with_min_zero_an_idle_target_goes_to_zero_and_comes_back() {
    let mut world = World::new(View::Kafka, policy(objective(120, 4, 10.0, 30), 0, 20), 2, 0.0);
    world.run(0, 1800, 15, |t| if (600..900).contains(&t) { 2.0 } else { 0.0 });
    assert_eq!(world.replicas_between(400, 600).last(), Some(&0), "idle: {:?} {:?}", world.decisions, world.history);
    assert!(world.replicas_between(600, 900).iter().any(|r| *r >= 6), "busy again: {:?}", world.decisions);
    assert_eq!(world.replicas_between(1600, 1800).last(), Some(&0));
    assert!(world.longest_wait(600, 900) <= 120, "{}", world.longest_wait(600, 900));
}

#[test]
fn the_reason_reads_like_the_issue_example() {
    let mut world = World::new(View::Airflow, policy(objective(60, 16, 30.0, 90), 1, 50), 2, 31.0);
    world.waiting = 40.0;
    let observations = [world.observation()];
    let inputs = Inputs { current: 2, ready: Some(2), observations: &observations, pause: Pause::None, now: secs(0) };
    let decision = decide(&world.policy, &mut world.history, &inputs);
    let reason = decision.reason.to_string();
    assert!(
        reason.starts_with("q: arrivals 1.0/s (est.), 0.033 tasks/s per slot, backlog 40, in flight 31 → "),
        "{reason}"
    );
    assert!(reason.ends_with("→ 3 replicas keep p95 wait ≤ 60s (predicted 38s)"), "{reason}");
    assert_eq!(decision.reason.label(), "metric");
}

#[test]
fn the_reason_says_when_arrivals_are_counted() {
    let mut world = World::new(View::Kafka, policy(objective(60, 1, 1.0, 30), 1, 50), 2, 0.0);
    world.waiting = 10.0;
    let observations = [world.observation()];
    let inputs = Inputs { current: 2, ready: Some(2), observations: &observations, pause: Pause::None, now: secs(0) };
    let reason = decide(&world.policy, &mut world.history, &inputs).reason.to_string();
    assert!(reason.starts_with("q: arrivals 0.0/s (counted), "), "{reason}");
}
