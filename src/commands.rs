//! The CLI's commands, each returning the process exit code.

use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::app::{App, render_table};
use crate::config::{Config, Target};
use crate::simulate::{self, Keda, Ours, Trace};

/// Exit code of a config that does not validate.
const EXIT_INVALID_CONFIG: u8 = 2;

/// How `once` prints its reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// `validate`: exit 0 if the config is valid, else 2 with one line per problem.
pub fn validate(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!("{}: valid ({} sources, {} targets)", path.display(), config.sources.len(), config.targets.len());
            ExitCode::SUCCESS
        }
        Err(error) => invalid(path, &error),
    }
}

/// `run`: the daemon, until SIGTERM or SIGINT.
pub async fn run(path: &Path, dry_run: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return invalid(path, &error),
    };
    let app = match App::new(&config, dry_run).await {
        Ok(app) => app,
        Err(error) => return fail(&error),
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match app.run(Some(path.to_path_buf()), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// `once`: one cycle for every target, printed; writes unless `dry_run`.
pub async fn once(path: &Path, dry_run: bool, output: Output) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return invalid(path, &error),
    };
    let mut app = match App::new(&config, dry_run).await {
        Ok(app) => app,
        Err(error) => return fail(&error),
    };
    let reports = app.once().await;
    match output {
        Output::Table => print!("{}", render_table(&reports)),
        Output::Json => match serde_json::to_string_pretty(&reports) {
            Ok(json) => println!("{json}"),
            Err(error) => return fail(&error),
        },
    }
    ExitCode::SUCCESS
}

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
    /// KEDA + HPA with their defaults.
    Keda,
}

/// Seed of the simulated spot interruptions: a run is reproducible.
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
    let simulated: Vec<&Target> = config.targets.iter().filter(|t| t.simulation.is_some()).collect();
    let chosen = match target {
        Some(name) => config.targets.iter().find(|t| t.name == name),
        None => simulated.first().copied(),
    };
    let Some(chosen) = chosen else {
        return fail(&match target {
            Some(name) => format!("no target named {name:?} in {}", config_path.display()),
            None => format!("no target in {} has a [targets.simulation] block", config_path.display()),
        });
    };
    let Some(sim) = &chosen.simulation else {
        return fail(&format!(
            "target {:?} has no [targets.simulation] block (throughput_per_replica, …)",
            chosen.name
        ));
    };
    let sources: Vec<&str> = chosen.policy.triggers.iter().map(|t| t.source.as_str()).collect();
    let arrivals = match trace.arrivals_for(&sources) {
        Ok(arrivals) => arrivals,
        Err(error) => return fail(&format!("{}: {error}", trace_path.display())),
    };
    let timeline = outputs.svg.is_some() || outputs.csv.is_some();
    let ours = simulate::run(chosen, sim, &arrivals, &mut Ours::new(chosen), SIMULATION_SEED, timeline);
    let baseline = outputs
        .baseline
        .map(|_| simulate::run(chosen, sim, &arrivals, &mut Keda::new(chosen), SIMULATION_SEED, timeline));
    let trace_name = trace_path.display().to_string();
    let written = write_simulation_files(chosen, &trace_name, &ours, baseline.as_ref(), outputs);
    if let Err(error) = written {
        return fail(&error);
    }
    match outputs.output {
        Output::Table => print!(
            "{}",
            simulate::render_table(&chosen.name, &trace_name, &ours.summary, baseline.as_ref().map(|b| &b.summary))
        ),
        Output::Json => {
            let json =
                simulate::summary_json(&chosen.name, &trace_name, &ours.summary, baseline.as_ref().map(|b| &b.summary));
            println!("{json:#}");
        }
    }
    ExitCode::SUCCESS
}

fn write_simulation_files(
    target: &Target,
    trace: &str,
    ours: &simulate::Run,
    baseline: Option<&simulate::Run>,
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

fn invalid(path: &Path, error: &crate::config::ConfigError) -> ExitCode {
    for problem in &error.problems {
        eprintln!("{}: {problem}", path.display());
    }
    ExitCode::from(EXIT_INVALID_CONFIG)
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!(%error, "queue-autoscaler failed");
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

/// Cancels `shutdown` on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received: finishing the cycle in flight");
    shutdown.cancel();
}

/// Logs to stderr as text or JSON lines; `RUST_LOG` filters (default `info,lapin=off`: lapin
/// logs an ERROR for every channel the broker closes, which a passive declare of a queue that
/// does not exist yet does at every poll; the Celery source reports what matters itself).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,lapin=off"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Makes ring the process's TLS crypto provider (rediss:// needs one installed).
pub fn init_tls() {
    // Fails only when a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
