//! The discovery documents clients read before anything else: `/version`, `/api`, `/api/v1`,
//! `/apis` and `/apis/GROUP/v1`. Only the legacy (unaggregated) form: a client that asks for
//! aggregated discovery (`apidiscovery.k8s.io/v2`) gets plain JSON and falls back to it, as
//! client-go does with an older server.

use axum::response::Response;
use serde_json::{Value, json};

use super::resource::Resource;
use super::status::{no_route, ok};

/// The version this server claims: the one k8s-openapi's `v1_33` feature targets.
const MINOR: &str = "33";

/// The answer for a path off the resource tree, if it is a discovery path.
pub fn answer(path: &str) -> Response {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => ok(version()),
        ["api"] => ok(json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] })),
        ["api", "v1"] => ok(resource_list("")),
        ["apis"] => ok(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups() })),
        ["apis", group] if known(group) => ok(group_of(group)),
        ["apis", group, "v1"] if known(group) => ok(resource_list(group)),
        _ => no_route(),
    }
}

fn version() -> Value {
    json!({
        "major": "1", "minor": MINOR, "gitVersion": format!("v1.{MINOR}.0"), "gitCommit": "test",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

fn known(group: &str) -> bool {
    !group.is_empty() && Resource::ALL.iter().any(|r| r.group() == group)
}

fn groups() -> Vec<Value> {
    let mut names: Vec<&str> = Resource::ALL.iter().map(|r| r.group()).filter(|g| !g.is_empty()).collect();
    names.dedup();
    names.into_iter().map(group_of).collect()
}

fn group_of(group: &str) -> Value {
    let version = json!({ "groupVersion": format!("{group}/v1"), "version": "v1" });
    json!({ "kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [version], "preferredVersion": version })
}

/// An `APIResourceList`: each resource of the group, and its `scale` subresource if it has one.
fn resource_list(group: &str) -> Value {
    let resources: Vec<Value> =
        Resource::ALL.into_iter().filter(|r| r.group() == group).flat_map(resource_entries).collect();
    let group_version = if group.is_empty() { "v1".to_owned() } else { format!("{group}/v1") };
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources })
}

fn resource_entries(resource: Resource) -> Vec<Value> {
    let mut entries = vec![json!({
        "name": resource.plural(),
        "singularName": resource.kind().to_lowercase(),
        "namespaced": resource.namespaced(),
        "kind": resource.kind(),
        "verbs": ["create", "get", "list", "patch", "update", "watch"],
        "shortNames": resource.short_names(),
    })];
    if resource.scalable() {
        entries.push(json!({
            "name": format!("{}/scale", resource.plural()), "singularName": "", "namespaced": true,
            "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
        }));
    }
    entries
}
