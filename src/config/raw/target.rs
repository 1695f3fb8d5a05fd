//! `[[targets]]`: a workload (Deployment or StatefulSet), its bounds, triggers and HPA-style
//! behavior.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use super::LONGEST_INTERVAL;
use super::fields::{FallbackReplicas, HumanDuration, check_duration};
use super::objective::{self, RawObjective};
use super::simulation::{self, RawSimulation};
use super::spot::{self, RawSpot};
use crate::config::{BusyWorkers, Daemon, Problem, Target, WorkloadKind};
use crate::policy::{Fallback, RatePolicy, RateUnit, ScalingRules, Select, TargetPolicy, TriggerPolicy};
use crate::source::{Kind, SourceSpec};

#[derive(Deserialize)]
pub(super) struct RawTarget {
    name: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    /// "Deployment" or "StatefulSet" (checked in `workload`, to name the choices in the error).
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    deployment: Option<String>,
    #[serde(default)]
    statefulset: Option<String>,
    #[serde(default = "default_min_replicas")]
    min_replicas: u32,
    max_replicas: u32,
    #[serde(default)]
    interval: Option<HumanDuration>,
    triggers: Vec<RawTrigger>,
    #[serde(default)]
    scale_up: RawRules,
    #[serde(default)]
    scale_down: RawRules,
    #[serde(default)]
    fallback: RawFallback,
    #[serde(default)]
    spot: Option<RawSpot>,
    #[serde(default)]
    protect_busy_workers: bool,
    #[serde(default)]
    busy_workers_source: Option<String>,
    #[serde(default = "default_true")]
    busy_workers_floor: bool,
    #[serde(default)]
    objective: Option<RawObjective>,
    #[serde(default)]
    simulation: Option<RawSimulation>,
}

fn default_true() -> bool {
    true
}

fn default_namespace() -> String {
    "default".to_owned()
}

fn default_min_replicas() -> u32 {
    1
}

#[derive(Deserialize)]
struct RawTrigger {
    source: String,
    #[serde(default)]
    per_replica: Option<f64>,
    #[serde(default)]
    activation: f64,
}

/// `[targets.scale_up]` or `[targets.scale_down]`. Every field is optional: defaults are filled
/// per field, like the HPA's.
#[derive(Deserialize, Default)]
struct RawRules {
    stabilization: Option<HumanDuration>,
    policies: Option<Vec<RawRatePolicy>>,
    select: Option<String>,
    /// Only in `scale_down`.
    cooldown: Option<HumanDuration>,
}

#[derive(Deserialize)]
struct RawRatePolicy {
    /// "pods" or "percent" (checked in `rate_policy`, to name the choices in the error).
    #[serde(rename = "type")]
    unit: String,
    value: u32,
    period: HumanDuration,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawFallback {
    failure_threshold: u32,
    replicas: FallbackReplicas,
}

impl Default for RawFallback {
    fn default() -> Self {
        RawFallback { failure_threshold: 3, replicas: FallbackReplicas(Fallback::Hold) }
    }
}

/// The longest cooldown.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// HPA validation limits (autoscaling/v2): periods in (0, 1800 s], windows in [0, 3600 s].
const MAX_PERIOD: Duration = Duration::from_secs(1800);
const MAX_WINDOW: Duration = Duration::from_secs(3600);

pub(super) fn targets(
    raw: Vec<RawTarget>,
    daemon: &Daemon,
    sources: &BTreeMap<String, SourceSpec>,
    problems: &mut Vec<Problem>,
) -> Vec<Target> {
    let mut names = HashSet::new();
    let mut workloads = HashSet::new();
    let mut targets = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("targets[{i}]");
        if !names.insert(raw.name.clone()) {
            problems
                .push(Problem::new(format!("{path}.name"), format!("another target is already named {:?}", raw.name)));
        }
        let (kind, name) = workload(&raw, &path, problems);
        let twin = raw.spot.as_ref().map(|s| ("spot.deployment", WorkloadKind::Deployment, s.deployment()));
        for (key, kind, workload) in [(kind_key(kind), kind, name.as_str())].into_iter().chain(twin) {
            if !workloads.insert((raw.namespace.clone(), kind, workload.to_owned())) {
                problems.push(Problem::new(
                    format!("{path}.{key}"),
                    format!(
                        "{}/{workload} is already scaled by another target; two writers would fight",
                        raw.namespace
                    ),
                ));
            }
        }
        targets.push(target(raw, kind, name, &path, daemon, sources, problems));
    }
    targets
}

/// The key that names a workload of this kind.
fn kind_key(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployment",
        WorkloadKind::StatefulSet => "statefulset",
    }
}

/// The workload's kind and name: `deployment = "…"`, or `kind = "StatefulSet"` with
/// `statefulset = "…"`. The other kind's key is a mistake, said as such rather than ignored.
fn workload(raw: &RawTarget, path: &str, problems: &mut Vec<Problem>) -> (WorkloadKind, String) {
    let kind = match raw.kind.as_deref() {
        None | Some("Deployment") => WorkloadKind::Deployment,
        Some("StatefulSet") => WorkloadKind::StatefulSet,
        Some(other) => {
            let message = format!("{other:?} is not one of \"Deployment\", \"StatefulSet\"");
            problems.push(Problem::new(format!("{path}.kind"), message));
            return (WorkloadKind::Deployment, raw.deployment.clone().unwrap_or_default());
        }
    };
    let (name, other, other_key) = match kind {
        WorkloadKind::Deployment => (&raw.deployment, &raw.statefulset, "statefulset"),
        WorkloadKind::StatefulSet => (&raw.statefulset, &raw.deployment, "deployment"),
    };
    let key = kind_key(kind);
    if other.is_some() {
        let message = match kind {
            WorkloadKind::Deployment => {
                "names a StatefulSet: add kind = \"StatefulSet\" (or name a Deployment with deployment = \"…\")"
            }
            WorkloadKind::StatefulSet => {
                "names a Deployment, but kind = \"StatefulSet\": name the StatefulSet with statefulset = \"…\""
            }
        };
        problems.push(Problem::new(format!("{path}.{other_key}"), message));
    }
    match name.as_deref() {
        None if other.is_none() => {
            problems.push(Problem::new(format!("{path}.{key}"), "required key is missing (the workload to scale)"));
        }
        Some("") => problems.push(Problem::new(format!("{path}.{key}"), "must not be empty")),
        _ => {}
    }
    (kind, name.clone().unwrap_or_default())
}

fn target(
    mut raw: RawTarget,
    kind: WorkloadKind,
    workload: String,
    path: &str,
    daemon: &Daemon,
    sources: &BTreeMap<String, SourceSpec>,
    problems: &mut Vec<Problem>,
) -> Target {
    let mut problem = |key: &str, message: String| problems.push(Problem::new(format!("{path}.{key}"), message));
    for (key, value) in [("name", &raw.name), ("namespace", &raw.namespace)] {
        if value.is_empty() {
            problem(key, "must not be empty".to_owned());
        }
    }
    if raw.max_replicas == 0 {
        problem("max_replicas", "must be at least 1".to_owned());
    }
    if raw.min_replicas > raw.max_replicas {
        problem("min_replicas", format!("{} is above max_replicas {}", raw.min_replicas, raw.max_replicas));
    }
    if raw.triggers.is_empty() {
        problem("triggers", "needs at least one trigger".to_owned());
    }
    if raw.scale_up.cooldown.is_some() {
        problem("scale_up.cooldown", "cooldown delays scale-down: put it in [targets.scale_down]".to_owned());
    }
    let interval = raw.interval.map_or(daemon.interval, |i| i.0);
    if raw.interval.is_some() {
        check_duration(interval, Duration::from_secs(1), LONGEST_INTERVAL, &format!("{path}.interval"), problems);
    }
    let objective = raw.objective.take().map(|o| objective::objective(o, &format!("{path}.objective"), problems));
    let triggers = raw
        .triggers
        .iter()
        .enumerate()
        .map(|(i, t)| trigger(t, &format!("{path}.triggers[{i}]"), objective.is_some(), sources, problems))
        .collect();
    // An objective plans for the start-up delay and has its own hysteresis: by default it is
    // held back by neither a rate limit up nor a stabilization window down.
    let (up_defaults, down_defaults) = match objective {
        Some(_) => (ScalingRules::unlimited(), ScalingRules::objective_scale_down()),
        None => (ScalingRules::hpa_scale_up(), ScalingRules::hpa_scale_down()),
    };
    let scale_up = rules(&raw.scale_up, up_defaults, &format!("{path}.scale_up"), problems);
    let scale_down = rules(&raw.scale_down, down_defaults, &format!("{path}.scale_down"), problems);
    let fallback = fallback(&raw, &format!("{path}.fallback"), problems);
    if let Some(cooldown) = raw.scale_down.cooldown {
        check_duration(cooldown.0, Duration::ZERO, DAY, &format!("{path}.scale_down.cooldown"), problems);
    }
    let policy = TargetPolicy {
        min_replicas: raw.min_replicas,
        max_replicas: raw.max_replicas,
        triggers,
        scale_up,
        scale_down,
        cooldown: raw.scale_down.cooldown.map_or(Duration::ZERO, |c| c.0),
        fallback_threshold: raw.fallback.failure_threshold,
        fallback,
        objective,
    };
    let busy = busy_workers(&raw, path, sources, problems);
    statefulset_limits(&raw, kind, path, problems);
    let spot = raw.spot.map(|s| spot::spot(s, &workload, &format!("{path}.spot"), problems));
    let objective_slots = policy.objective.as_ref().map(|o| o.slots);
    let simulation =
        raw.simulation.map(|s| simulation::simulation(s, objective_slots, &format!("{path}.simulation"), problems));
    Target { name: raw.name, namespace: raw.namespace, kind, workload, interval, policy, spot, busy, simulation }
}

/// What a StatefulSet target cannot have, and why.
fn statefulset_limits(raw: &RawTarget, kind: WorkloadKind, path: &str, problems: &mut Vec<Problem>) {
    if kind != WorkloadKind::StatefulSet {
        return;
    }
    if raw.spot.is_some() {
        // The split moves replicas between the two workloads at every shift; a StatefulSet's
        // pods are its ordinals, each with its own PersistentVolumeClaims (volumeClaimTemplates)
        // and stable network name, and scaling one in strands that state on the old ordinals.
        problems.push(Problem::new(
            format!("{path}.spot"),
            "a spot twin needs Deployments: a StatefulSet's pods are numbered, each with its own volumes and \
             name, so replicas cannot move between it and a twin without stranding that state (scale spot \
             and on-demand workers as two Deployments, or as two targets)",
        ));
    }
    if raw.protect_busy_workers && !raw.busy_workers_floor {
        // kubernetes pkg/controller/statefulset: scale-in removes the highest ordinal first, and
        // pod-deletion-cost is read only by the ReplicaSet controller (KEP-2255).
        problems.push(Problem::new(
            format!("{path}.busy_workers_floor"),
            "a StatefulSet removes its highest ordinals first and ignores pod-deletion-cost, so the floor is the \
             only protection of its busy workers: leave busy_workers_floor = true, or protect_busy_workers off",
        ));
    }
}

fn trigger(
    raw: &RawTrigger,
    path: &str,
    objective: bool,
    sources: &BTreeMap<String, SourceSpec>,
    problems: &mut Vec<Problem>,
) -> TriggerPolicy {
    if !sources.contains_key(&raw.source) {
        let known: Vec<&str> = sources.keys().map(String::as_str).collect();
        problems.push(Problem::new(
            format!("{path}.source"),
            format!("no source named {:?} (defined: {})", raw.source, known.join(", ")),
        ));
    }
    match raw.per_replica {
        Some(per_replica) if !(per_replica.is_finite() && per_replica > 0.0) => {
            problems.push(Problem::new(format!("{path}.per_replica"), "must be a number above 0"));
        }
        None if !objective => problems.push(Problem::new(
            format!("{path}.per_replica"),
            "required key is missing (or give the target a [targets.objective] to size for a wait)",
        )),
        _ => {}
    }
    if !(raw.activation.is_finite() && raw.activation >= 0.0) {
        problems.push(Problem::new(format!("{path}.activation"), "must be a number, 0 or above"));
    }
    TriggerPolicy { source: raw.source.clone(), per_replica: raw.per_replica, activation: raw.activation }
}

fn rules(raw: &RawRules, defaults: ScalingRules, path: &str, problems: &mut Vec<Problem>) -> ScalingRules {
    let select = match raw.select.as_deref() {
        None => defaults.select,
        Some("max") => Select::Max,
        Some("min") => Select::Min,
        Some("disabled") => Select::Disabled,
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.select"),
                format!("{other:?} is not one of \"max\", \"min\", \"disabled\""),
            ));
            defaults.select
        }
    };
    let policies = match &raw.policies {
        None => defaults.policies,
        Some(raw) => {
            raw.iter().enumerate().map(|(i, p)| rate_policy(p, &format!("{path}.policies[{i}]"), problems)).collect()
        }
    };
    // Written empty: a mistake (leaving the key out keeps the defaults; an objective's default
    // scale-up has no policy at all, meaning no rate limit).
    if raw.policies.as_ref().is_some_and(Vec::is_empty) && select != Select::Disabled {
        problems.push(Problem::new(format!("{path}.policies"), "needs at least one policy (or select = \"disabled\")"));
    }
    let stabilization = raw.stabilization.map_or(defaults.stabilization, |s| s.0);
    if stabilization > MAX_WINDOW {
        problems.push(Problem::new(format!("{path}.stabilization"), "must be at most 1h (the HPA's limit)"));
    }
    ScalingRules { stabilization, policies, select }
}

fn rate_policy(raw: &RawRatePolicy, path: &str, problems: &mut Vec<Problem>) -> RatePolicy {
    if raw.value == 0 {
        problems.push(Problem::new(format!("{path}.value"), "must be at least 1"));
    }
    if raw.period.0.is_zero() || raw.period.0 > MAX_PERIOD {
        problems.push(Problem::new(format!("{path}.period"), "must be more than 0s and at most 30m (the HPA's limit)"));
    }
    let unit = match raw.unit.as_str() {
        "pods" => RateUnit::Pods,
        "percent" => RateUnit::Percent,
        other => {
            problems
                .push(Problem::new(format!("{path}.type"), format!("{other:?} is not one of \"pods\", \"percent\"")));
            RateUnit::Pods
        }
    };
    RatePolicy { unit, value: raw.value, period: raw.period.0 }
}

fn fallback(target: &RawTarget, path: &str, problems: &mut Vec<Problem>) -> Fallback {
    let raw = &target.fallback;
    if raw.failure_threshold == 0 {
        problems.push(Problem::new(format!("{path}.failure_threshold"), "must be at least 1"));
    }
    if let Fallback::Replicas(n) = raw.replicas.0
        && (n < target.min_replicas || n > target.max_replicas)
    {
        problems.push(Problem::new(
            format!("{path}.replicas"),
            format!("{n} is outside [min_replicas, max_replicas] = [{}, {}]", target.min_replicas, target.max_replicas),
        ));
    }
    raw.replicas.0
}

/// `protect_busy_workers`: which source says which workers are busy — the one named, else the
/// target's only trigger that can (an Airflow source, or a Celery source with `events = true`).
fn busy_workers(
    raw: &RawTarget,
    path: &str,
    sources: &BTreeMap<String, SourceSpec>,
    problems: &mut Vec<Problem>,
) -> Option<BusyWorkers> {
    if !raw.protect_busy_workers {
        return None;
    }
    let knows_busy =
        |name: &str| sources.get(name).is_some_and(|s| s.settings.kind() == Kind::Airflow || s.follows_celery_events());
    let source = match &raw.busy_workers_source {
        Some(name) if knows_busy(name) => name.clone(),
        Some(name) => {
            let message = match sources.get(name).map(|s| s.settings.kind()) {
                Some(Kind::Celery) => format!(
                    "{name:?} is a celery source without `events = true`: busy workers are read from the \
                     workers' event stream (set `events = true` on it, and start the workers with -E)"
                ),
                _ => format!(
                    "{name:?} is neither an airflow source nor a celery source with `events = true` \
                     (busy workers are read from Airflow's task table or from Celery's events)"
                ),
            };
            problems.push(Problem::new(format!("{path}.busy_workers_source"), message));
            return None;
        }
        None => {
            let mut able = raw.triggers.iter().map(|t| t.source.as_str()).filter(|s| knows_busy(s));
            match (able.next(), able.next()) {
                (Some(only), None) => only.to_owned(),
                _ => {
                    let message = "needs busy_workers_source, or exactly one trigger on an airflow source or a \
                                   celery source with `events = true` to ask which workers are busy";
                    problems.push(Problem::new(format!("{path}.protect_busy_workers"), message));
                    return None;
                }
            }
        }
    };
    Some(BusyWorkers { source, floor: raw.busy_workers_floor })
}
