//! Injected faults, written as sentences:
//!
//! ```ignore
//! api.next(2, Calls::patch("deployments/scale").of("worker"))
//!     .conflict(Change::to_replicas(5).annotate("queue-autoscaler.io/paused", "true"));
//! api.next(1, Calls::get("deployments").of("worker")).fail(500);
//! api.next(3, Calls::write("deployments/scale")).throttle(Duration::from_secs(1));
//! api.every(Calls::get("deployments/scale")).answer_after(Duration::from_secs(3));
//! api.next(1, Calls::watch("pods")).end_after(Duration::from_millis(200));
//! ```
//!
//! A request takes the first rule that matches it and still has uses left.

use std::time::Duration;

use serde_json::{Value, json};

use super::ApiServer;
use super::call::Call;
use super::store::lock;

const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete"];
const ALL_VERBS: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete"];

/// Which requests: verbs on a resource (`deployments`, `deployments/scale`), optionally one
/// object's (`.of(name)`) and in one namespace (`.in_namespace(ns)`).
#[derive(Debug, Clone)]
pub struct Calls {
    verbs: &'static [&'static str],
    resource: String,
    name: Option<String>,
    namespace: Option<String>,
}

impl Calls {
    fn verbs(verbs: &'static [&'static str], resource: &str) -> Calls {
        Calls { verbs, resource: resource.to_owned(), name: None, namespace: None }
    }

    pub fn get(resource: &str) -> Calls {
        Calls::verbs(&["get"], resource)
    }

    pub fn list(resource: &str) -> Calls {
        Calls::verbs(&["list"], resource)
    }

    pub fn watch(resource: &str) -> Calls {
        Calls::verbs(&["watch"], resource)
    }

    pub fn create(resource: &str) -> Calls {
        Calls::verbs(&["create"], resource)
    }

    /// PUT.
    pub fn update(resource: &str) -> Calls {
        Calls::verbs(&["update"], resource)
    }

    pub fn patch(resource: &str) -> Calls {
        Calls::verbs(&["patch"], resource)
    }

    /// create, update, patch or delete.
    pub fn write(resource: &str) -> Calls {
        Calls::verbs(WRITE_VERBS, resource)
    }

    /// Any verb.
    pub fn any(resource: &str) -> Calls {
        Calls::verbs(ALL_VERBS, resource)
    }

    /// Only requests naming this object.
    pub fn of(mut self, name: &str) -> Calls {
        self.name = Some(name.to_owned());
        self
    }

    pub fn in_namespace(mut self, namespace: &str) -> Calls {
        self.namespace = Some(namespace.to_owned());
        self
    }

    pub fn matches(&self, verb: &str, resource: &str, namespace: Option<&str>, name: Option<&str>) -> bool {
        self.verbs.contains(&verb)
            && self.resource == resource
            && self.name.as_deref().is_none_or(|n| name == Some(n))
            && self.namespace.as_deref().is_none_or(|n| namespace == Some(n))
    }
}

/// What another writer changed just before a conflict was answered: a JSON merge patch on the
/// object (the Deployment or StatefulSet, for a `scale` request). Its resourceVersion changes too.
#[derive(Debug, Clone)]
pub struct Change(pub(super) Value);

impl Change {
    /// Nothing but the resourceVersion (someone wrote the same object).
    pub fn version_only() -> Change {
        Change(json!({}))
    }

    /// `spec.replicas` set to `n`.
    pub fn to_replicas(n: i64) -> Change {
        Change::version_only().replicas(n)
    }

    /// An annotation set to `value`.
    pub fn annotation(key: &str, value: &str) -> Change {
        Change::version_only().annotate(key, value)
    }

    /// Any JSON merge patch: `Change::merge(json!({ "spec": { "holderIdentity": "intruder" } }))`.
    pub fn merge(patch: Value) -> Change {
        Change(patch)
    }

    pub fn replicas(mut self, n: i64) -> Change {
        self.0["spec"]["replicas"] = json!(n);
        self
    }

    pub fn annotate(mut self, key: &str, value: &str) -> Change {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    /// An annotation removed.
    pub fn remove_annotation(mut self, key: &str) -> Change {
        self.0["metadata"]["annotations"][key] = Value::Null;
        self
    }
}

/// What an injected fault does.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Apply the change, then answer 409 Conflict.
    Conflict(Change),
    /// Answer this status (500, 503, …) with a `Status` body.
    Fail(u16),
    /// Answer 429 with `Retry-After` (whole seconds, at least 1).
    Throttle(Duration),
    /// Handle the request now, hold the answer this long.
    AnswerAfter(Duration),
    /// A watch: close the stream after this long.
    EndAfter(Duration),
}

struct Rule {
    calls: Calls,
    /// `None`: every matching request until `clear_faults`.
    uses_left: Option<usize>,
    fault: Fault,
}

/// The faults waiting for requests.
#[derive(Default)]
pub struct Faults(Vec<Rule>);

impl Faults {
    /// The fault for this request, if a rule matches it (using the rule up by one).
    pub fn take(&mut self, call: &Call) -> Option<Fault> {
        let resource = call.resource_path();
        let matches = |rule: &Rule| {
            rule.uses_left != Some(0)
                && rule.calls.matches(call.verb, &resource, call.namespace.as_deref(), call.name.as_deref())
        };
        let rule = self.0.iter_mut().find(|rule| matches(rule))?;
        if let Some(left) = rule.uses_left.as_mut() {
            *left -= 1;
        }
        Some(rule.fault.clone())
    }

    /// How many counted faults have not happened yet.
    pub fn pending(&self) -> usize {
        self.0.iter().filter_map(|rule| rule.uses_left).sum()
    }
}

/// A fault being described: say what happens to the requests chosen.
#[must_use = "say what happens: .conflict(…), .fail(…), .throttle(…), .answer_after(…) or .end_after(…)"]
pub struct Inject<'a> {
    server: &'a ApiServer,
    calls: Calls,
    uses: Option<usize>,
}

impl Inject<'_> {
    fn add(self, fault: Fault) {
        let rule = Rule { calls: self.calls, uses_left: self.uses, fault };
        lock(&self.server.store).faults.0.push(rule);
    }

    /// Another writer makes `change` just before each request, which is answered 409 Conflict:
    /// a client that re-reads sees the changed object.
    pub fn conflict(self, change: Change) {
        self.add(Fault::Conflict(change));
    }

    /// Answered with this status code (500, 503, …) and a `Status` body; nothing is changed.
    pub fn fail(self, code: u16) {
        self.add(Fault::Fail(code));
    }

    /// Answered 429 Too Many Requests with `Retry-After`; nothing is changed.
    pub fn throttle(self, retry_after: Duration) {
        self.add(Fault::Throttle(retry_after));
    }

    /// Handled at once (a write takes effect), but answered only after `delay`: longer than the
    /// client's timeout, the client cannot know whether its write happened.
    pub fn answer_after(self, delay: Duration) {
        self.add(Fault::AnswerAfter(delay));
    }

    /// Watches: the server closes the stream after `after`, as an API server restarting would.
    pub fn end_after(self, after: Duration) {
        self.add(Fault::EndAfter(after));
    }
}

impl ApiServer {
    /// The next `n` requests that `calls` describes get the fault said next.
    pub fn next(&self, n: usize, calls: Calls) -> Inject<'_> {
        Inject { server: self, calls, uses: Some(n) }
    }

    /// Every request that `calls` describes gets the fault said next, until `clear_faults`.
    pub fn every(&self, calls: Calls) -> Inject<'_> {
        Inject { server: self, calls, uses: None }
    }

    /// The fault is over: no more injected faults.
    pub fn clear_faults(&self) {
        lock(&self.store).faults.0.clear();
    }

    /// How many counted (`next`) faults are still waiting for their request.
    pub fn faults_pending(&self) -> usize {
        lock(&self.store).faults.pending()
    }

    /// Answers the next `n` scale writes with 409 Conflict, after another writer bumped the version.
    pub fn inject_conflicts(&self, n: usize) {
        self.next(n, Calls::write("deployments/scale")).conflict(Change::version_only());
    }
}
