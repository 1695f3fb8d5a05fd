//! `plan` as plain data: what a cycle would write, from what was read.

use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::policy::{Pause, Sample};

/// One target `workers` (data/worker), 16 tasks per replica, 0..=20 replicas, the HPA's default
/// behaviour (a 300 s scale-down window) unless `extra` says otherwise.
fn target(extra: &str) -> Target {
    let text = format!(
        r#"
[sources.q]
kind = "celery"
url = "redis://127.0.0.1:6379/0"
queues = ["default"]

[[targets]]
name = "workers"
namespace = "data"
deployment = "worker"
min_replicas = 0
max_replicas = 20
triggers = [{{ source = "q", per_replica = 16 }}]
{extra}
"#
    );
    let config = Config::parse(&text, std::iter::empty()).unwrap_or_else(|e| panic!("{e}"));
    config.targets[0].clone()
}

fn queue(depth: f64) -> Vec<Observation> {
    vec![Observation::Answered(Sample { value: depth, ..Sample::default() })]
}

fn read(replicas: u32, pause: Pause) -> Cluster {
    Cluster::Read(Seen { main: Observed::with(replicas, pause), twin: None })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Plans once for `spec` from `memory`.
fn plan_at(spec: &Target, memory: &Memory, cluster: &Cluster, observations: &[Observation], now: Duration) -> Plan {
    let facts = Facts { spec, memory, cluster, observations, spot_health: None, busy: &Busy::NotAsked, now };
    plan(&facts)
}

fn writes(plan: &Plan) -> Vec<(String, u32, u32)> {
    plan.writes.iter().map(|w| (w.workload.clone(), w.from, w.to)).collect()
}

#[test]
fn a_scale_up_is_one_write_and_its_event_names_the_new_size() {
    let spec = target("");
    let plan = plan_at(&spec, &Memory::new(0), &read(2, Pause::None), &queue(64.0), secs(0));
    assert_eq!(writes(&plan), [("worker".to_owned(), 2, 4)]);
    let event = plan.rescale_event(&plan.writes[0]);
    assert!(event.note.starts_with("New size: 4; reason: "), "{}", event.note);
}

#[test]
fn a_paused_deployment_gets_no_write_and_a_pinned_one_its_pin() {
    let spec = target("");
    let plan = plan_at(&spec, &Memory::new(0), &read(5, Pause::Frozen), &queue(0.0), secs(0));
    assert!(plan.writes.is_empty(), "{:?}", writes(&plan));
    assert!(plan.costs.is_empty() && plan.events.is_empty());
    // Pinned: the pin is written, whatever the queue says.
    let plan = plan_at(&spec, &Memory::new(0), &read(5, Pause::Pinned(3)), &queue(640.0), secs(0));
    assert_eq!(writes(&plan), [("worker".to_owned(), 5, 3)]);
}

#[test]
fn a_failed_read_plans_no_write_and_leaves_the_memory_alone() {
    let spec = target("");
    let plan = plan_at(&spec, &Memory::new(0), &Cluster::Unreadable, &queue(0.0), secs(0));
    assert!(plan.writes.is_empty());
    // The start-up hold comes from the first real read (8), not from min_replicas: planning
    // from the memory the failed read left, an empty queue 2 s later keeps the 8 for the
    // scale-down window, exactly as if the failed read had never happened.
    let after_failure = plan_at(&spec, &plan.memory, &read(8, Pause::None), &queue(0.0), secs(2));
    let without_failure = plan_at(&spec, &Memory::new(0), &read(8, Pause::None), &queue(0.0), secs(2));
    assert_eq!(writes(&after_failure), writes(&without_failure));
    assert!(after_failure.writes.is_empty(), "held at 8, not {:?}", writes(&after_failure));
}

#[test]
fn planning_again_from_the_same_memory_is_exact() {
    // After a conflict the target plans again from the memory before the cycle: the policy's
    // history (windows, rate limits) must not count the first plan.
    let spec = target("");
    let memory = Memory::new(0);
    let first = plan_at(&spec, &memory, &read(2, Pause::None), &queue(640.0), secs(0));
    let again = plan_at(&spec, &memory, &read(2, Pause::None), &queue(640.0), secs(0));
    assert_eq!(writes(&first), writes(&again));
    // Someone paused the Deployment at 5 in between: the new plan writes nothing.
    let paused = plan_at(&spec, &memory, &read(5, Pause::Frozen), &queue(0.0), secs(0));
    assert!(paused.writes.is_empty(), "{:?}", writes(&paused));
}

#[test]
fn never_from_n_to_zero_in_one_step() {
    let spec = target("[targets.scale_down]\nstabilization = \"0s\"");
    let plan = plan_at(&spec, &Memory::new(0), &read(5, Pause::None), &queue(0.0), secs(0));
    assert_eq!(writes(&plan), [("worker".to_owned(), 5, 1)]);
}

/// `workers` with busy-aware scale-in (floor on), no scale-down window.
fn protected() -> Target {
    let mut spec = target("[targets.scale_down]\nstabilization = \"0s\"");
    spec.busy = Some(crate::config::BusyWorkers { source: "q".to_owned(), floor: true });
    spec
}

/// Pods `worker-0` … of which the first `busy` run one task each.
fn busy_pods(pods: u32, busy: u32) -> Busy {
    use crate::k8s::pods::WorkerPod;
    let names = (0..pods).map(|i| format!("worker-{i}"));
    let hosts = names.clone().take(busy as usize).map(|n| (n, 1)).collect();
    let pods = names.map(|name| WorkerPod { name, cost: 0 }).collect();
    Busy::Known(BusyPods { hosts, pods: [("worker".to_owned(), pods)].into() })
}

fn plan_busy(spec: &Target, cluster: &Cluster, busy: &Busy) -> Plan {
    let facts = Facts {
        spec,
        memory: &Memory::new(0),
        cluster,
        observations: &queue(0.0),
        spot_health: None,
        busy,
        now: secs(0),
    };
    plan(&facts)
}

#[test]
fn a_metric_scale_down_keeps_the_busy_pods_and_marks_them() {
    let spec = protected();
    let first = plan_busy(&spec, &read(5, Pause::None), &Busy::NotAsked);
    assert!(first.needs_busy, "a scale-down of a protected target learns the busy pods first");
    let plan = plan_busy(&spec, &read(5, Pause::None), &busy_pods(5, 4));
    assert!(!plan.needs_busy);
    assert_eq!(writes(&plan), [("worker".to_owned(), 5, 4)], "not below the 4 busy pods");
    let marked: Vec<&str> = plan.costs.iter().map(|c| c.pod.as_str()).collect();
    assert_eq!(marked, ["worker-0", "worker-1", "worker-2", "worker-3"]);
    let unknown = plan_busy(&spec, &read(5, Pause::None), &Busy::Unknown);
    assert!(unknown.writes.is_empty(), "unknown busy pods: no scale-down");
}

#[test]
fn a_lowered_max_replicas_also_learns_the_busy_pods_but_keeps_its_bound() {
    let mut spec = protected();
    spec.policy.max_replicas = 3;
    let first = plan_busy(&spec, &read(5, Pause::None), &Busy::NotAsked);
    assert!(first.needs_busy, "issue #13: a bound that removes pods skipped busy protection");
    let plan = plan_busy(&spec, &read(5, Pause::None), &busy_pods(5, 4));
    assert_eq!(writes(&plan), [("worker".to_owned(), 5, 3)], "the bound wins over the floor");
    assert_eq!(plan.costs.len(), 4, "the busy pods are marked, so idle ones go first");
}

/// `workers` as a StatefulSet `worker` with busy-aware scale-in, and the pods `worker-N` that
/// run tasks, out of `pods`.
fn statefulset_busy(pods: u32, busy: &[u32]) -> (Target, Cluster, Busy) {
    use crate::k8s::pods::WorkerPod;
    let mut spec = protected();
    spec.kind = crate::config::WorkloadKind::StatefulSet;
    let hosts = busy.iter().map(|i| (format!("worker-{i}"), 1)).collect();
    let cluster = Cluster::Read(Seen { main: Observed::statefulset(pods, Pause::None), twin: None });
    let pods = (0..pods).map(|i| WorkerPod { name: format!("worker-{i}"), cost: 0 }).collect();
    (spec, cluster, Busy::Known(BusyPods { hosts, pods: [("worker".to_owned(), pods)].into() }))
}

#[test]
fn a_statefulset_keeps_every_ordinal_up_to_its_highest_busy_pod() {
    // Two busy pods, ordinals 1 and 6 of 8. A Deployment's floor would be 2 (the costs pick which
    // go); a StatefulSet removes 7, 6, 5, … in order, so only 7 replicas keep worker-6.
    let (spec, cluster, busy) = statefulset_busy(8, &[1, 6]);
    let plan = plan_busy(&spec, &cluster, &busy);
    assert_eq!(writes(&plan), [("worker".to_owned(), 8, 7)]);
    assert!(plan.note.contains("worker-6"), "the reason names the pod that holds the floor: {}", plan.note);
    assert_eq!(plan.decision.reason.label(), "busy_workers");
    assert!(plan.costs.is_empty(), "a StatefulSet reads no pod-deletion-cost: none is written");
    assert_eq!(plan.writes[0].observed.kind, crate::config::WorkloadKind::StatefulSet);
}

#[test]
fn a_statefulset_with_only_low_ordinals_busy_scales_down_to_them() {
    let (spec, cluster, busy) = statefulset_busy(8, &[0, 2]);
    let plan = plan_busy(&spec, &cluster, &busy);
    assert_eq!(writes(&plan), [("worker".to_owned(), 8, 3)], "keeps worker-0 … worker-2");
    let (spec, cluster, idle) = statefulset_busy(8, &[]);
    let plan = plan_busy(&spec, &cluster, &idle);
    assert_eq!(writes(&plan), [("worker".to_owned(), 8, 1)], "idle: down as the policy says (never N → 0)");
}

#[test]
fn a_statefulset_bound_wins_over_its_busy_ordinals() {
    let (mut spec, cluster, busy) = statefulset_busy(8, &[6]);
    spec.policy.max_replicas = 4;
    let plan = plan_busy(&spec, &cluster, &busy);
    assert_eq!(writes(&plan), [("worker".to_owned(), 8, 4)], "max_replicas is the operator's bound");
}
