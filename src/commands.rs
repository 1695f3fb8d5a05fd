//! The CLI's commands, each returning the process exit code.

use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

mod simulate;

pub use simulate::{Baseline, SimulateOutputs, simulate};

use crate::app::{App, render_table};
use crate::config::Config;
use crate::rbac;

/// Exit code of a config that does not validate.
const EXIT_INVALID_CONFIG: u8 = 2;

/// How `once` prints its reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// `validate`: exit 0 if the config is valid, else 2 with one line per problem; warnings (on
/// stderr) do not change the exit code.
pub fn validate(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            for warning in crate::config::warnings(&config) {
                eprintln!("{}: warning: {warning}", path.display());
            }
            println!("{}: valid ({} sources, {} targets)", path.display(), config.sources.len(), config.targets.len());
            ExitCode::SUCCESS
        }
        Err(error) => invalid(path, &error),
    }
}

/// `rbac`: prints the ServiceAccount and the least RBAC the config needs, as YAML.
pub fn rbac(path: &Path, identity: &rbac::Identity) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return fail(&format!("cannot read {}: {error}", path.display())),
    };
    // The lease's namespace defaults to the daemon's own (POD_NAMESPACE in the pod).
    let env = std::env::vars().filter(|(k, _)| k != "POD_NAMESPACE");
    let env = env.chain([("POD_NAMESPACE".to_owned(), identity.namespace.clone())]);
    match Config::parse(&text, env) {
        Ok(config) => {
            print!("{}", rbac::render(&rbac::manifests(&config, identity)));
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
