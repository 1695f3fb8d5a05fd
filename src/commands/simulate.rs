//! `simulate`: replays a trace through the policy (and a baseline), prints the comparison.

use std::path::Path;
use std::process::ExitCode;

use super::{Output, fail, invalid};
use crate::config::{Config, Simulation, Target};
use crate::simulate::{self, Compared, Keda, Ours, Run, Trace, View, Workload};
use crate::source::Settings;

/// What `simulate` writes besides its summary.
pub struct SimulateOutputs<'a> {
    pub svg: Option<&'a Path>,
    pub csv: Option<&'a Path>,
    pub output: Output,
    pub baseline: Option<Baseline>,
}

/// What `simulate` compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// KEDA + HPA with their defaults, and the target's `per_replica`.
    Keda,
    /// KEDA + HPA defaults with the `per_replica` that meets the target's objective at the
    /// fewest replica-hours (a sweep).
    KedaTuned,
}

/// Seed of the simulated task durations and spot interruptions: a run is reproducible.
const SIMULATION_SEED: u64 = 0x5EED;

/// `simulate`: replays a trace through the policy (and the baseline), prints the comparison.
pub fn simulate(config_path: &Path, trace_path: &Path, target: Option<&str>, outputs: &SimulateOutputs) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(error) => return invalid(config_path, &error),
    };
    let trace = match std::fs::read_to_string(trace_path)
        .map_err(|e| e.to_string())
        .and_then(|text| Trace::parse(&text).map_err(|e| e.to_string()))
    {
        Ok(trace) => trace,
        Err(error) => return fail(&format!("{}: {error}", trace_path.display())),
    };
    let (chosen, sim) = match choose(&config, target, config_path) {
        Ok(chosen) => chosen,
        Err(error) => return fail(&error),
    };
    let sources: Vec<&str> = chosen.policy.triggers.iter().map(|t| t.source.as_str()).collect();
    let arrivals = match trace.arrivals_for(&sources) {
        Ok(arrivals) => arrivals,
        Err(error) => return fail(&format!("{}: {error}", trace_path.display())),
    };
    let durations: Vec<Option<f64>> = (0..arrivals.len()).map(|t| trace.service_seconds(t)).collect();
    let views = views(&config, chosen);
    let workload = Workload { arrivals: &arrivals, durations: &durations, views: &views };
    let timeline = outputs.svg.is_some() || outputs.csv.is_some();
    let ours = simulate::run(chosen, sim, &workload, &mut Ours::new(chosen), SIMULATION_SEED, timeline);
    let baseline = match outputs.baseline.map(|b| baseline(b, chosen, sim, &workload, timeline)).transpose() {
        Ok(baseline) => baseline,
        Err(error) => return fail(&error),
    };
    let trace_name = trace_path.display().to_string();
    let compared = baseline.as_ref().map(|b| Compared {
        name: b.name,
        summary: &b.run.summary,
        per_replica: b.per_replica,
        meets: b.meets,
    });
    let written = write_files(chosen, &trace_name, &ours, baseline.as_ref().map(|b| &b.run), outputs);
    if let Err(error) = written {
        return fail(&error);
    }
    match outputs.output {
        Output::Table => {
            print!("{}", simulate::render_table(&chosen.name, &trace_name, &ours.summary, compared.as_ref()));
        }
        Output::Json => {
            let json = simulate::summary_json(&chosen.name, &trace_name, &ours.summary, compared.as_ref());
            println!("{json:#}");
        }
    }
    ExitCode::SUCCESS
}

/// The target named, or the first with a `[targets.simulation]` block.
fn choose<'a>(config: &'a Config, target: Option<&str>, path: &Path) -> Result<(&'a Target, &'a Simulation), String> {
    let chosen = match target {
        Some(name) => config.targets.iter().find(|t| t.name == name),
        None => config.targets.iter().find(|t| t.simulation.is_some()),
    };
    let chosen = chosen.ok_or_else(|| match target {
        Some(name) => format!("no target named {name:?} in {}", path.display()),
        None => format!("no target in {} has a [targets.simulation] block", path.display()),
    })?;
    let sim = chosen.simulation.as_ref().ok_or_else(|| {
        format!("target {:?} has no [targets.simulation] block (service_seconds, slots, …)", chosen.name)
    })?;
    Ok((chosen, sim))
}

/// How each trigger's source kind sees the simulated queue.
fn views(config: &Config, target: &Target) -> Vec<View> {
    let view = |source: &str| match config.sources.get(source).map(|s| &s.settings) {
        Some(Settings::Celery(celery)) if celery.events => View::CeleryEvents { unacked: celery.include_unacked },
        Some(Settings::Celery(celery)) => View::Celery { unacked: celery.include_unacked },
        Some(Settings::Airflow(_)) => View::Airflow,
        Some(Settings::Kafka(_)) => View::Kafka,
        // Validation guarantees every trigger names a source.
        None => View::Celery { unacked: false },
    };
    target.policy.triggers.iter().map(|t| view(&t.source)).collect()
}

/// A baseline's run and what it was run with.
struct BaselineRun {
    name: &'static str,
    per_replica: Option<f64>,
    meets: Option<bool>,
    run: Run,
}

/// Runs the baseline asked for.
fn baseline(
    kind: Baseline,
    target: &Target,
    sim: &Simulation,
    workload: &Workload,
    timeline: bool,
) -> Result<BaselineRun, String> {
    match kind {
        Baseline::Keda => {
            if target.policy.triggers.iter().any(|t| t.per_replica.is_none()) {
                return Err(format!(
                    "target {:?}: KEDA needs a per_replica on every trigger; or try --baseline keda-tuned, which finds the best",
                    target.name
                ));
            }
            let run = simulate::run(target, sim, workload, &mut Keda::new(target, None), SIMULATION_SEED, timeline);
            let per_replica = target.policy.triggers.first().and_then(|t| t.per_replica);
            Ok(BaselineRun { name: "keda", per_replica, meets: None, run })
        }
        Baseline::KedaTuned => {
            let objective = target.policy.objective.as_ref().ok_or_else(|| {
                format!("target {:?} has no [targets.objective]: keda-tuned needs its max_wait", target.name)
            })?;
            let tuned = simulate::tune_keda(target, sim, workload, objective.max_wait.as_secs(), SIMULATION_SEED);
            // The sweep keeps no timelines; the chosen setting runs once more for them.
            let run = if timeline {
                let mut keda = Keda::new(target, Some(tuned.per_replica));
                simulate::run(target, sim, workload, &mut keda, SIMULATION_SEED, true)
            } else {
                tuned.run
            };
            Ok(BaselineRun { name: "keda-tuned", per_replica: Some(tuned.per_replica), meets: Some(tuned.meets), run })
        }
    }
}

fn write_files(
    target: &Target,
    trace: &str,
    ours: &Run,
    baseline: Option<&Run>,
    outputs: &SimulateOutputs,
) -> Result<(), String> {
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = outputs.svg {
        write(path, simulate::render_svg(&format!("{} — {trace}", target.name), ours, baseline))?;
        eprintln!("chart written to {}", path.display());
    }
    if let Some(path) = outputs.csv {
        write(path, simulate::render_csv(ours, baseline))?;
        eprintln!("timeline written to {}", path.display());
    }
    Ok(())
}
