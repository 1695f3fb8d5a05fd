//! HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the loop is alive), `/readyz`
//! (a first cycle has completed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::k8s::lease::Leadership;
use crate::metrics::Metrics;

/// The loop's liveness, as the endpoints report it.
pub struct Health {
    started: Instant,
    leadership: Arc<Leadership>,
    /// A loop that has not finished a cycle for this long is reported dead (in milliseconds:
    /// a reload that changes the intervals changes it).
    stall_after_ms: AtomicU64,
    last_cycle: Mutex<Option<Instant>>,
    /// Whether `/readyz` names the lease holder (`daemon.admin_details`).
    details: bool,
}

impl Health {
    /// `interval` is the longest poll interval: a live loop finishes a cycle at least that often.
    pub fn new(interval: Duration, leadership: Arc<Leadership>) -> Self {
        let health = Health {
            started: Instant::now(),
            leadership,
            stall_after_ms: AtomicU64::new(0),
            last_cycle: Mutex::new(None),
            details: false,
        };
        health.set_interval(interval);
        health
    }

    /// Takes a new longest interval into use (after a reload).
    pub fn set_interval(&self, interval: Duration) {
        let stall_after = interval.saturating_mul(3).saturating_add(Duration::from_secs(30));
        let ms = u64::try_from(stall_after.as_millis()).unwrap_or(u64::MAX);
        self.stall_after_ms.store(ms, Ordering::Relaxed);
    }

    /// With `details`, `/readyz` names the pod that holds the lease (`daemon.admin_details`).
    pub fn with_details(mut self, details: bool) -> Self {
        self.details = details;
        self
    }

    pub fn cycle_done(&self) {
        *self.lock() = Some(Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain Option<Instant>: a poisoned lock still holds a valid one.
        self.last_cycle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn live(&self) -> bool {
        let last = self.lock().unwrap_or(self.started);
        last.elapsed() < Duration::from_millis(self.stall_after_ms.load(Ordering::Relaxed))
    }

    fn ready(&self) -> bool {
        self.lock().is_some()
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    health: Arc<Health>,
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, health });
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    if let Err(error) = served {
        tracing::error!(%error, "admin server failed");
    }
}

async fn metrics_page(State(state): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.health.live() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the decision loop has stalled\n")
    }
}

/// Ready once a first cycle has completed, leader or standby (a standby is ready to take over);
/// the body says which, and names the leader's pod only with `daemon.admin_details`.
async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let role = role(&state.health.leadership, state.health.details);
    if state.health.ready() {
        (StatusCode::OK, format!("ready: {role}\n"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("waiting for the first cycle: {role}\n"))
    }
}

fn role(leadership: &Leadership, details: bool) -> String {
    match (leadership.is_elected(), leadership.is_leader(), details.then(|| leadership.holder()).flatten()) {
        (false, _, _) => "leader (no leader election)".to_owned(),
        (true, true, _) => "leader".to_owned(),
        (true, false, Some(holder)) => format!("standby (leader: {holder})"),
        (true, false, None) if details => "standby (no leader seen yet)".to_owned(),
        (true, false, None) => "standby".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::lease::Fencing;

    #[test]
    fn the_stall_threshold_follows_a_reloaded_interval() {
        let health = Health::new(Duration::from_secs(1), Leadership::always());
        assert_eq!(health.stall_after_ms.load(Ordering::Relaxed), 33_000);
        health.set_interval(Duration::from_secs(60));
        assert_eq!(health.stall_after_ms.load(Ordering::Relaxed), 210_000, "3 × 60 s + 30 s");
    }

    #[test]
    fn readyz_names_no_pod_unless_asked() {
        let standby = Leadership::elected(Fencing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        });
        assert_eq!(role(&standby, false), "standby");
        assert_eq!(role(&standby, true), "standby (no leader seen yet)");
        assert_eq!(role(&Leadership::always(), false), "leader (no leader election)");
    }
}
