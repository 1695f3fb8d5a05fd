//! The `queue-autoscaler` command line: parses arguments and hands over to `commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use queue_autoscaler::commands::{self, Baseline, Output, SimulateOutputs};
use queue_autoscaler::rbac::Identity;

#[derive(Parser)]
#[command(name = "queue-autoscaler", version, about = "Scales Kubernetes worker Deployments from queue depth")]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM/SIGINT.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Decide and report, never write.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check a config file: exit 0 if valid, else 2 with one line per problem.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Replay a trace of arrivals through the policy (and KEDA's defaults); nothing else needed.
    Simulate {
        #[arg(long)]
        config: PathBuf,
        /// CSV of `seconds,arrivals` (or one column per source).
        #[arg(long)]
        trace: PathBuf,
        /// The target to simulate (default: the first with a [targets.simulation] block).
        #[arg(long)]
        target: Option<String>,
        /// Write a chart.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Write the per-second timeline.
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
        #[arg(long, value_enum)]
        baseline: Option<Baseline>,
    },
    /// Print the least RBAC this config needs (ServiceAccount, Roles, bindings) as YAML.
    Rbac {
        #[arg(long)]
        config: PathBuf,
        /// The daemon's own namespace: its ServiceAccount's, and the lease's by default.
        #[arg(long, default_value = "queue-autoscaler")]
        namespace: String,
        #[arg(long, default_value = "queue-autoscaler")]
        service_account: String,
        /// Leave out the ServiceAccount (it exists already, as in deploy/).
        #[arg(long)]
        without_service_account: bool,
    },
    /// Poll every source once, decide every target, print, exit.
    Once {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::init_logging(cli.log_json);
    commands::init_tls();
    match cli.command {
        Command::Run { config, dry_run } => commands::run(&config, dry_run).await,
        Command::Validate { config } => commands::validate(&config),
        Command::Once { config, dry_run, output } => commands::once(&config, dry_run, output).await,
        Command::Rbac { config, namespace, service_account, without_service_account } => {
            let with_service_account = !without_service_account;
            commands::rbac(&config, &Identity { namespace, service_account, with_service_account })
        }
        Command::Simulate { config, trace, target, svg, csv, output, baseline } => {
            let outputs = SimulateOutputs { svg: svg.as_deref(), csv: csv.as_deref(), output, baseline };
            commands::simulate(&config, &trace, target.as_deref(), &outputs)
        }
    }
}
