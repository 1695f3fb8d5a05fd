//! `simulate` through the real binary: the bundled traces, the outputs, and bad input.

mod support;

use serde_json::Value;
use support::daemon::run;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
const NIGHTLY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/traces/airflow-nightly.csv");

fn simulate(extra: &[&str]) -> std::process::Output {
    let mut args =
        vec!["simulate", "--config", EXAMPLE, "--trace", NIGHTLY, "--target", "airflow-workers", "--baseline", "keda"];
    args.extend_from_slice(extra);
    run(&args, None, &[])
}

#[test]
fn json_summary_side_by_side_with_files_and_the_same_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, csv) = (dir.path().join("chart.svg"), dir.path().join("timeline.csv"));
    let out = simulate(&["--output", "json", "--svg", svg.to_str().unwrap(), "--csv", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["target"], "airflow-workers");
    for run in ["ours", "baseline"] {
        let summary = &json[run];
        assert_eq!(summary["tasks"], 13087, "every arrival of the trace, {run}");
        assert_eq!(summary["unfinished"], 0);
        assert!(summary["wait_seconds"]["p95"].as_u64().unwrap() >= summary["wait_seconds"]["p50"].as_u64().unwrap());
        assert!(summary["replica_hours"]["on_demand"].as_f64().unwrap() > 0.0);
    }
    assert!(json["ours"]["replica_hours"]["spot"].as_f64().unwrap() > 0.0, "the target has a spot twin");
    assert!(
        json["baseline"]["replica_hours"]["spot"].as_f64().unwrap() > 0.0,
        "KEDA's totals get the same placement, so the gap is the decision alone"
    );
    for run in ["ours", "baseline"] {
        let (cost, all_on_demand) = (&json[run]["cost"], &json[run]["cost_all_on_demand"]);
        assert!(cost.as_f64().unwrap() < all_on_demand.as_f64().unwrap(), "{run}: spot is the cheaper capacity");
        let utilization = json[run]["utilization"].as_f64().unwrap();
        assert!(utilization > 0.0 && utilization <= 1.0, "{run}: {utilization}");
    }
    assert_eq!(json["baseline"]["kind"], "keda");
    assert_eq!(json["baseline"]["per_replica"], 16.0, "the trigger's own per_replica");
    assert!(json["ours"]["arrival_rate_error"].as_f64().is_some(), "the objective estimates a rate");
    let timeline = std::fs::read_to_string(&csv).unwrap();
    assert!(timeline.starts_with(
        "second,arrivals,backlog,on_demand,spot,ready,baseline_backlog,baseline_replicas,baseline_ready,running,arrival_estimate,baseline_running\n"
    ));
    let seconds = json["ours"]["seconds"].as_u64().unwrap().max(json["baseline"]["seconds"].as_u64().unwrap());
    assert_eq!(timeline.lines().count() as u64, 1 + seconds, "a row a second of the longer run");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let again = simulate(&["--output", "json"]);
    assert_eq!(serde_json::from_slice::<Value>(&again.stdout).unwrap(), json, "deterministic");
}

#[test]
fn table_output_compares_with_keda() {
    let out = simulate(&[]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("queue-autoscaler") && table.contains("KEDA + HPA defaults"), "{table}");
    for row in [
        "replica-hours",
        "utilization",
        "cost all on-demand",
        "replica-hours on-demand",
        "replica-hours spot",
        "cost",
        "wait p50",
        "wait p95",
        "wait max",
        "peak backlog",
        "rescales",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bad.csv");
    std::fs::write(&trace, "seconds,arrivals\n0,5\n1,five\n").unwrap();
    let out = run(&["simulate", "--config", EXAMPLE, "--trace", trace.to_str().unwrap()], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.csv: line 3: \"five\" is not a whole number of arrivals")
    );
    let out = run(&["simulate", "--config", EXAMPLE, "--trace", NIGHTLY, "--target", "nope"], None, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target named \"nope\""));
    let columns = dir.path().join("columns.csv");
    std::fs::write(&columns, "seconds,orders\n0,5\n").unwrap();
    let out = run(&["simulate", "--config", EXAMPLE, "--trace", columns.to_str().unwrap()], None, &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the trace has no column for source \"celery_default\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readme_shows_what_its_first_command_prints() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start =
        readme.find("```text\nsimulate: target celery-workers").expect("the README's output block") + "```text\n".len();
    let shown = &readme[start..start + readme[start..].find("```").unwrap()];
    let args = ["simulate", "--config", "config.example.toml", "--trace", "examples/traces/celery-webapp.csv"];
    let out = std::process::Command::new(support::daemon::BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .args(["--target", "celery-workers", "--baseline", "keda"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), shown, "update the README's block with the command's output");
}

#[test]
fn keda_tuned_reports_its_setting_and_whether_it_meets_the_objective() {
    let trace = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/traces/celery-webapp.csv");
    let args = ["simulate", "--config", EXAMPLE, "--trace", trace, "--target", "celery-workers"];
    let out = run(&[&args[..], &["--baseline", "keda-tuned", "--output", "json"]].concat(), None, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["baseline"]["kind"], "keda-tuned");
    assert_eq!(json["baseline"]["meets_max_wait"], true);
    assert!(json["baseline"]["wait_seconds"]["p95"].as_u64().unwrap() <= 60, "the target's max_wait");
    assert!(json["baseline"]["per_replica"].as_f64().unwrap() > 0.0);
    // A target without an objective has no max_wait to tune for, and says so.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ratio.toml");
    let text = "[sources.q]\nkind = \"celery\"\nurl = \"redis://127.0.0.1/0\"\nqueues = [\"q\"]\n\
        [[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 5\ntriggers = [{ source = \"q\", per_replica = 4 }]\n\
        [targets.simulation]\nservice_seconds = 1\n";
    std::fs::write(&config, text).unwrap();
    let out = run(
        &["simulate", "--config", config.to_str().unwrap(), "--trace", trace, "--baseline", "keda-tuned"],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no [targets.objective]: keda-tuned needs its max_wait"), "{stderr}");
}
