//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics and defaults
//! (client-go `tools/leaderelection/leaderelection.go`):
//!
//! - expiry is judged by the *local* time the record was last seen to change, not the remote
//!   `renewTime`, so clock skew between replicas does not matter;
//! - writes are PUTs carrying the `resourceVersion` read, so two candidates cannot both win;
//! - a leader that has not renewed within `renew_deadline` stops writing at once, before any
//!   other replica may take over (`lease_duration` > `renew_deadline`);
//! - a write starts only while it would land, even at its longest (`kube_timeout`), before the
//!   lease could expire for the other replicas: the safe margin;
//! - on shutdown the leader releases the lease so that a standby takes over without waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::KubeError;

/// client-go's jitter factor on the retry period.
const JITTER: f64 = 1.2;

/// Where the lease lives and how it is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (its pod name, by default).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// The timings that fence writes: the lease's, and how long a write may take to land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fencing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    /// The bound on one Kubernetes request (`daemon.kube_timeout`): a write started now lands
    /// at the latest this much later.
    pub write_timeout: Duration,
}

/// Whether this replica may write now. Shared by the elector and the writers.
pub struct Leadership {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `None`: no election, always the leader.
    fencing: Option<Fencing>,
    /// When the last successful write of the lease by this replica was sent.
    renewed: Option<Instant>,
    holder: Option<String>,
    /// This replica's identity, once it has held the lease.
    me: Option<String>,
}

impl Leadership {
    /// Without leader election: this replica always writes.
    pub fn always() -> Arc<Leadership> {
        Arc::new(Leadership { state: Mutex::default() })
    }

    /// With leader election: a writer until the first renewal.
    pub fn elected(fencing: Fencing) -> Arc<Leadership> {
        Arc::new(Leadership { state: Mutex::new(State { fencing: Some(fencing), ..State::default() }) })
    }

    /// A reload changed `daemon.kube_timeout`: the margin follows the new bound.
    pub fn set_write_timeout(&self, write_timeout: Duration) {
        if let Some(fencing) = self.lock().fencing.as_mut() {
            fencing.write_timeout = write_timeout;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain fields, valid whatever a panicking holder left.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this replica holds the lease now and a write started now would land before the
    /// lease could expire elsewhere. Checked right before every write.
    pub fn is_leader(&self) -> bool {
        self.is_leader_at(Instant::now())
    }

    /// [`Leadership::is_leader`] at the instant `now`.
    fn is_leader_at(&self, now: Instant) -> bool {
        let state = self.lock();
        let Some(fencing) = state.fencing else { return true };
        // client-go's fencing: the holder seen on the lease must be this replica, and the last
        // renewal (timed from when it was sent) recent enough. Then the safe margin: the other
        // replicas count `lease_duration` from no earlier than that send, so a write must land,
        // at its slowest, before then.
        let fresh = state.renewed.is_some_and(|at| {
            let since = now.saturating_duration_since(at);
            since < fencing.renew_deadline && since.saturating_add(fencing.write_timeout) < fencing.lease_duration
        });
        state.me.is_some() && state.holder == state.me && fresh
    }

    /// The holder last seen on the lease (this replica's identity while it leads).
    pub fn holder(&self) -> Option<String> {
        self.lock().holder.clone()
    }

    pub fn is_elected(&self) -> bool {
        self.lock().fencing.is_some()
    }

    /// A write of the lease sent at `sent` succeeded.
    fn renewed(&self, identity: &str, sent: Instant) {
        let mut state = self.lock();
        state.renewed = Some(sent);
        state.holder = Some(identity.to_owned());
        state.me = Some(identity.to_owned());
    }

    /// When the last successful renewal was sent.
    fn renewed_at(&self) -> Option<Instant> {
        self.lock().renewed
    }

    fn lost(&self) {
        self.lock().renewed = None;
    }

    fn saw(&self, holder: Option<String>) {
        self.lock().holder = holder;
    }
}

/// The record to write to claim or keep the lease, or `None` while another holder's lease is
/// still valid: client-go's `tryAcquireOrRenew` decision. `observed` is when (by the local
/// clock) the current record was first seen as it is.
pub fn claim(
    current: Option<&LeaseSpec>,
    observed: Instant,
    me: &str,
    settings: &LeaseSettings,
    now: Instant,
    wall: Timestamp,
) -> Option<LeaseSpec> {
    let holder = current.and_then(|c| c.holder_identity.as_deref()).filter(|h| !h.is_empty());
    let held_by_me = holder == Some(me);
    if let (Some(_), false) = (holder, held_by_me) {
        let seconds = current.and_then(|c| c.lease_duration_seconds).and_then(|s| u64::try_from(s).ok());
        let duration = seconds.map_or(settings.lease_duration, Duration::from_secs);
        if observed + duration > now {
            return None;
        }
    }
    let transitions = current.and_then(|c| c.lease_transitions).unwrap_or(0);
    Some(LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if held_by_me { current.and_then(|c| c.acquire_time.clone()) } else { Some(MicroTime(wall)) },
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(if held_by_me || current.is_none() { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    })
}

/// Keeps trying to acquire, then to renew, the lease; updates the shared [`Leadership`].
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    leadership: Arc<Leadership>,
    /// The record as last seen, and when it was first seen so.
    observed: Option<(Option<LeaseSpec>, Instant)>,
    on_change: Box<dyn Fn(bool) + Send + Sync>,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        settings: LeaseSettings,
        leadership: Arc<Leadership>,
        on_change: Box<dyn Fn(bool) + Send + Sync>,
    ) -> Self {
        let api = Api::namespaced(client, &settings.namespace);
        Elector { api, settings, leadership, observed: None, on_change }
    }

    /// Runs until `shutdown`, then releases the lease if it holds it.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            if !self.acquire(&shutdown).await {
                return;
            }
            tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "became the leader");
            (self.on_change)(true);
            let released = self.renew(&shutdown).await;
            (self.on_change)(false);
            if released {
                return;
            }
        }
    }

    /// Tries every retry period (jittered) until it holds the lease. `false` on shutdown.
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, lease = %self.settings.name, "leader election: cannot read or write the lease")
                }
            }
            let wait = self.settings.retry_period.mul_f64(1.0 + rand_fraction() * (JITTER - 1.0));
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Renews every retry period; gives up when no renewal succeeded within the renew deadline.
    /// Returns `true` when it stopped for a shutdown (after releasing the lease).
    async fn renew(&mut self, shutdown: &CancellationToken) -> bool {
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.release().await;
                    return true;
                }
                _ = tokio::time::sleep(self.settings.retry_period) => {}
            }
            let deadline = renewed + self.settings.renew_deadline;
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => renewed = self.leadership.renewed_at().unwrap_or(renewed),
                _ if Instant::now() >= deadline => {
                    self.leadership.lost();
                    tracing::warn!(identity = %self.settings.identity, "lost the lease: not renewed within the renew deadline; no more writes");
                    return false;
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "leader election: renewing the lease failed"),
                Err(_) => {}
            }
        }
    }

    /// One attempt: read the lease (create it if missing), then claim or renew it with a write
    /// that carries the version read.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, KubeError> {
        let me = self.settings.identity.clone();
        let lease = match self.api.get_opt(&self.settings.name).await.map_err(KubeError::from_kube)? {
            Some(lease) => lease,
            None => return self.create().await,
        };
        let now = Instant::now();
        let observed = match &self.observed {
            Some((seen, at)) if *seen == lease.spec => *at,
            _ => now,
        };
        self.observed = Some((lease.spec.clone(), observed));
        self.leadership.saw(lease.spec.as_ref().and_then(|s| s.holder_identity.clone()));
        let Some(spec) = claim(lease.spec.as_ref(), observed, &me, &self.settings, now, Timestamp::now()) else {
            return Ok(false);
        };
        let updated = Lease { metadata: lease.metadata, spec: Some(spec) };
        // The renewal counts from when it was sent, not from when the answer came back.
        let sent = Instant::now();
        match self.api.replace(&self.settings.name, &PostParams::default(), &updated).await {
            Ok(written) => {
                self.observed = Some((written.spec, Instant::now()));
                self.leadership.renewed(&me, sent);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(KubeError::from_kube(error)),
        }
    }

    async fn create(&mut self) -> Result<bool, KubeError> {
        let spec =
            claim(None, Instant::now(), &self.settings.identity, &self.settings, Instant::now(), Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec,
        };
        let sent = Instant::now();
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(written) => {
                self.observed = Some((written.spec, Instant::now()));
                self.leadership.renewed(&self.settings.identity, sent);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(KubeError::from_kube(error)),
        }
    }

    /// client-go's ReleaseOnCancel: an empty holder and a 1 s duration, so a standby takes over
    /// at its next try.
    async fn release(&mut self) {
        self.leadership.lost();
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(identity = %self.settings.identity, "released the lease"),
            Err(error) => tracing::warn!(%error, "could not release the lease; a standby takes over when it expires"),
        }
    }
}

/// A fraction in [0, 1) for jitter; the clock's nanoseconds are random enough to spread retries.
fn rand_fraction() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LeaseSettings {
        LeaseSettings {
            name: "queue-autoscaler".into(),
            namespace: "ops".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn held_by(holder: &str, transitions: i32) -> LeaseSpec {
        let wall: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(wall)),
            renew_time: Some(MicroTime(wall)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn another_holders_valid_lease_is_respected_until_it_expires_locally() {
        let start = Instant::now();
        let wall = Timestamp::now();
        let current = held_by("b", 3);
        assert_eq!(claim(Some(&current), start, "a", &settings(), start + Duration::from_secs(14), wall), None);
        let taken =
            claim(Some(&current), start, "a", &settings(), start + Duration::from_secs(15), wall).expect("expired");
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(4), "a takeover counts a transition");
        assert_eq!(taken.acquire_time, Some(MicroTime(wall)));
    }

    #[test]
    fn renewing_keeps_acquire_time_and_transitions() {
        let start = Instant::now();
        let wall = Timestamp::now();
        let current = held_by("a", 3);
        let renewed = claim(Some(&current), start, "a", &settings(), start, wall).expect("mine");
        assert_eq!((renewed.lease_transitions, renewed.acquire_time.clone()), (Some(3), current.acquire_time.clone()));
        assert_eq!(renewed.renew_time, Some(MicroTime(wall)));
    }

    #[test]
    fn a_released_or_missing_lease_is_free() {
        let start = Instant::now();
        let mut released = held_by("b", 2);
        released.holder_identity = Some(String::new());
        assert!(claim(Some(&released), start, "a", &settings(), start, Timestamp::now()).is_some());
        let fresh = claim(None, start, "a", &settings(), start, Timestamp::now()).expect("free");
        assert_eq!((fresh.lease_transitions, fresh.lease_duration_seconds), (Some(0), Some(15)));
    }

    /// Fencing with the renew deadline as the binding limit: a write takes at most 10 ms.
    fn fencing(renew_deadline: Duration) -> Fencing {
        Fencing { lease_duration: renew_deadline * 2, renew_deadline, write_timeout: Duration::from_millis(10) }
    }

    /// client-go's defaults with this daemon's default `kube_timeout`.
    const DEFAULTS: Fencing = Fencing {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
    };

    /// Leadership with `fencing`, renewed by "a" with a write sent now (returned).
    fn renewed_now(fencing: Fencing) -> (Arc<Leadership>, Instant) {
        let leadership = Leadership::elected(fencing);
        let sent = Instant::now();
        leadership.renewed("a", sent);
        (leadership, sent)
    }

    #[test]
    fn leadership_lapses_after_the_renew_deadline() {
        // At given instants, so a busy machine cannot stretch the 50 ms between two asserts.
        let leadership = Leadership::elected(fencing(Duration::from_millis(50)));
        assert!(!leadership.is_leader());
        let sent = Instant::now();
        leadership.renewed("a", sent);
        assert!(leadership.is_leader_at(sent + Duration::from_millis(49)));
        assert!(
            !leadership.is_leader_at(sent + Duration::from_millis(50)),
            "no renewal within the deadline: no more writes"
        );
        assert!(Leadership::always().is_leader());
    }

    #[test]
    fn leadership_needs_the_lease_to_name_this_replica() {
        let (leadership, _) = renewed_now(fencing(Duration::from_secs(60)));
        assert!(leadership.is_leader());
        leadership.saw(Some("b".to_owned()));
        assert!(!leadership.is_leader(), "another holder on the lease: no writes, whatever the local clock says");
        leadership.saw(Some("a".to_owned()));
        assert!(leadership.is_leader());
    }

    #[test]
    fn a_renewal_counts_from_when_it_was_sent() {
        let (leadership, sent) = renewed_now(fencing(Duration::from_millis(50)));
        let answered = sent + Duration::from_millis(60);
        assert!(!leadership.is_leader_at(answered), "an answer that came back after the deadline does not lead");
    }

    #[test]
    fn a_write_starts_only_while_it_would_land_before_the_lease_expires() {
        // Defaults: a write may take 10 s, the lease lasts 15 s from the renewal sent, so writes
        // stop 5 s after it, although the renew deadline (10 s) is further away.
        let (leadership, sent) = renewed_now(DEFAULTS);
        assert!(leadership.is_leader_at(sent + Duration::from_millis(4_999)));
        assert!(
            !leadership.is_leader_at(sent + Duration::from_secs(5)),
            "a write started now could land when the lease has expired for the other replicas"
        );
        assert!(!leadership.is_leader_at(sent + Duration::from_secs(9)), "within the renew deadline, past the margin");
    }

    #[test]
    fn the_margin_follows_a_reloaded_kube_timeout() {
        let (leadership, sent) = renewed_now(DEFAULTS);
        let at = sent + Duration::from_secs(3);
        assert!(leadership.is_leader_at(at));
        leadership.set_write_timeout(Duration::from_secs(12));
        assert!(!leadership.is_leader_at(at), "3 s + 12 s reaches the 15 s lease");
        leadership.set_write_timeout(Duration::from_secs(15));
        assert!(!leadership.is_leader_at(sent), "a write as long as the lease can never start");
        let always = Leadership::always();
        always.set_write_timeout(Duration::from_secs(60));
        assert!(always.is_leader(), "without election the timeout does not matter");
    }
}
