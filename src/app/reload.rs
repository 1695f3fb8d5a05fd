//! Hot reload: the config file is re-read when its content changes (a mounted ConfigMap changes
//! by symlink swap, so the path is read again rather than watched as an inode) or on SIGHUP. A
//! valid config is sent to the loop; an invalid one is logged with its key paths, counted, and
//! the running config stays.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;

pub(super) async fn watch(
    path: PathBuf,
    every: Duration,
    reloads: Sender<Config>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut last = std::fs::read_to_string(&path).ok();
    let mut hangup = hangups();
    loop {
        let forced = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => false,
            _ = next_hangup(&mut hangup) => true,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "config reload: cannot read the file; keeping the running config");
                metrics.config_reload_failed();
                continue;
            }
        };
        if !forced && last.as_deref() == Some(text.as_str()) {
            continue;
        }
        last = Some(text.clone());
        match Config::parse(&text, std::env::vars()) {
            Ok(config) => {
                tracing::info!(path = %path.display(), forced, "config changed: reloading at the next cycle");
                if reloads.send(config).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                for problem in &error.problems {
                    tracing::error!(path = %path.display(), %problem, "config reload rejected; keeping the running config");
                }
                metrics.config_reload_failed();
            }
        }
    }
}

#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn next_hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangups() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<()>) {
    std::future::pending().await
}
