//! The least Kubernetes RBAC a config needs (`queue-autoscaler rbac`): a Role in each namespace
//! the targets use, the lease Role in the daemon's own namespace, and a ClusterRole only for what
//! is cluster-scoped (Nodes, watched for spot twins). Nothing is granted in a namespace the
//! config does not name, and the workloads are granted by name.
//!
//! ```text
//! Config ─► roles() ─► [Role] ─► manifests() ─► k8s-openapi objects ─► yaml::render()
//! ```
//!
//! Each grant mirrors a call of `target/` (tests/rbac.rs checks that they match exactly):
//! - the workload: `get` (replicas, pause annotations, selector; also the re-read after a 409),
//!   and its `scale` subresource `patch` (the write) — by name;
//! - `events.k8s.io` Events: `create` (a new Event per rescale, never a patched series);
//! - pods: `list` + `watch` for a spot twin's health, `list` + `patch` (deletion cost) for
//!   busy-aware scale-in; Nodes `list` + `watch` for spot health;
//! - the lease: `get` and `update` by name, `create` (which RBAC cannot limit by name).

mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role as NamespacedRole, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::config::{Config, Target, WorkloadKind};
pub use yaml::render;

/// Who the daemon runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The daemon's own namespace: its ServiceAccount's, and the lease's unless the config says.
    pub namespace: String,
    pub service_account: String,
    /// Print the ServiceAccount too (off where it exists already, as in `deploy/`).
    pub with_service_account: bool,
}

/// A Role (namespaced) or ClusterRole (`namespace: None`) and why it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub namespace: Option<String>,
    pub rules: Vec<Rule>,
    /// One line for the operator reading the YAML.
    pub purpose: String,
}

/// Verbs on one resource of one API group, on every object or only on `names`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub group: &'static str,
    pub resource: String,
    pub names: BTreeSet<String>,
    pub verbs: BTreeSet<&'static str>,
}

/// The API group and resource of a target's workload: its scale subresource follows.
fn workload(target: &Target) -> (&'static str, &'static str) {
    ("apps", target.kind.resource())
}

/// The rules of one Role, merged by (group, resource, whether named).
#[derive(Default)]
struct Rules(BTreeMap<(&'static str, String, bool), Rule>);

impl Rules {
    fn grant(&mut self, group: &'static str, resource: &str, names: &[&str], verbs: &[&'static str]) {
        let key = (group, resource.to_owned(), !names.is_empty());
        let rule = self.0.entry(key).or_insert_with(|| Rule {
            group,
            resource: resource.to_owned(),
            names: BTreeSet::new(),
            verbs: BTreeSet::new(),
        });
        rule.names.extend(names.iter().map(|n| (*n).to_owned()));
        rule.verbs.extend(verbs);
    }

    fn target(&mut self, target: &Target) {
        let (group, resource) = workload(target);
        self.grant(group, resource, &[&target.workload], &["get"]);
        self.grant(group, &format!("{resource}/scale"), &[&target.workload], &["patch"]);
        if let Some(twin) = &target.spot {
            self.grant("apps", "deployments", &[&twin.deployment], &["get"]);
            self.grant("apps", "deployments/scale", &[&twin.deployment], &["patch"]);
        }
        self.grant("events.k8s.io", "events", &[], &["create"]);
        if target.spot.is_some() {
            self.grant("", "pods", &[], &["list", "watch"]);
        }
        // Deletion costs are written only to a Deployment's pods: a StatefulSet reads none.
        match (&target.busy, target.kind) {
            (None, _) => {}
            (Some(_), WorkloadKind::Deployment) => self.grant("", "pods", &[], &["list", "patch"]),
            (Some(_), WorkloadKind::StatefulSet) => self.grant("", "pods", &[], &["list"]),
        }
    }

    fn into_vec(self) -> Vec<Rule> {
        self.0.into_values().collect()
    }
}

/// The Roles `config` needs when the daemon runs as `identity`.
pub fn roles(config: &Config, identity: &Identity) -> Vec<Role> {
    let mut by_namespace: BTreeMap<&str, (Rules, Vec<&str>)> = BTreeMap::new();
    for target in &config.targets {
        let (rules, names) = by_namespace.entry(target.namespace.as_str()).or_default();
        rules.target(target);
        names.push(&target.name);
    }
    let sa = &identity.service_account;
    let mut roles: Vec<Role> = by_namespace
        .into_iter()
        .map(|(namespace, (rules, targets))| Role {
            name: sa.clone(),
            namespace: Some(namespace.to_owned()),
            rules: rules.into_vec(),
            purpose: format!("scale the workloads of targets {} in namespace {namespace}", targets.join(", ")),
        })
        .collect();
    if let Some(election) = &config.daemon.leader_election {
        let mut rules = Rules::default();
        rules.grant("coordination.k8s.io", "leases", &[&election.lease_name], &["get", "update"]);
        rules.grant("coordination.k8s.io", "leases", &[], &["create"]);
        roles.push(Role {
            name: format!("{sa}-lease"),
            namespace: Some(election.namespace.clone()),
            rules: rules.into_vec(),
            purpose: format!("leader election on the Lease {}", election.lease_name),
        });
    }
    if config.targets.iter().any(|t| t.spot.is_some()) {
        let mut rules = Rules::default();
        rules.grant("", "nodes", &[], &["list", "watch"]);
        roles.push(Role {
            name: format!("{sa}-nodes"),
            namespace: None,
            rules: rules.into_vec(),
            purpose: "spot health: Nodes being reclaimed or cordoned (Nodes are cluster-scoped)".to_owned(),
        });
    }
    roles
}

/// One object to print, with a comment line above it.
pub struct Manifest {
    pub comment: String,
    pub object: serde_json::Value,
}

/// The ServiceAccount (if asked for), then each Role with its binding, as Kubernetes objects.
pub fn manifests(config: &Config, identity: &Identity) -> Vec<Manifest> {
    let mut manifests = Vec::new();
    if identity.with_service_account {
        let account = ServiceAccount {
            metadata: meta(&identity.service_account, Some(&identity.namespace)),
            ..Default::default()
        };
        manifests.push(manifest("the identity queue-autoscaler runs as", &account));
    }
    for role in roles(config, identity) {
        let rules = Some(role.rules.iter().map(policy_rule).collect());
        let metadata = meta(&role.name, role.namespace.as_deref());
        let subject = Subject {
            kind: "ServiceAccount".to_owned(),
            name: identity.service_account.clone(),
            namespace: Some(identity.namespace.clone()),
            ..Subject::default()
        };
        let kind = if role.namespace.is_some() { "Role" } else { "ClusterRole" };
        let role_ref = RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: kind.to_owned(),
            name: role.name.clone(),
        };
        let comment = format!("{kind}: {}", role.purpose);
        let bound = format!("{kind}Binding: the {kind} above, to {}/{}", identity.namespace, identity.service_account);
        let subjects = Some(vec![subject]);
        if role.namespace.is_some() {
            manifests.push(manifest(&comment, &NamespacedRole { metadata: metadata.clone(), rules }));
            manifests.push(manifest(&bound, &RoleBinding { metadata, role_ref, subjects }));
        } else {
            let cluster_role = ClusterRole { metadata: metadata.clone(), rules, aggregation_rule: None };
            manifests.push(manifest(&comment, &cluster_role));
            manifests.push(manifest(&bound, &ClusterRoleBinding { metadata, role_ref, subjects }));
        }
    }
    manifests
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), namespace: namespace.map(str::to_owned), ..ObjectMeta::default() }
}

fn policy_rule(rule: &Rule) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![rule.group.to_owned()]),
        resources: Some(vec![rule.resource.clone()]),
        resource_names: (!rule.names.is_empty()).then(|| rule.names.iter().cloned().collect()),
        verbs: rule.verbs.iter().map(|verb| (*verb).to_owned()).collect(),
        non_resource_urls: None,
    }
}

fn manifest(comment: &str, object: &impl Serialize) -> Manifest {
    // k8s-openapi objects serialize to JSON objects of strings, lists and maps: this cannot fail.
    let object = serde_json::to_value(object).unwrap_or_default();
    Manifest { comment: comment.to_owned(), object }
}

#[cfg(test)]
mod tests;
