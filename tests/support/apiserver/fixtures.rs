//! The cluster as a test sets it up and looks at it: workloads, pods, nodes, and what other
//! writers do to them behind the daemon's back.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ApiServer;
use super::faults::Change;
use super::objects::{Placement, merge, node, pod, workload};
use super::resource::Resource;
use super::selector::Selector;
use super::store::Key;

impl ApiServer {
    fn object(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.lock().get(&Key::new(resource, namespace, name)).cloned()
    }

    fn objects(&self, resource: Resource) -> Vec<Value> {
        self.lock().list(resource, None, &Selector::default())
    }

    fn put(&self, resource: Resource, namespace: &str, name: &str, object: Value) {
        self.lock().put(Key::new(resource, namespace, name), object);
    }

    /// Applies `change` (a JSON merge patch) to an object that must exist.
    fn change(&self, resource: Resource, namespace: &str, name: &str, change: &Change) {
        let mut object = self
            .object(resource, namespace, name)
            .unwrap_or_else(|| panic!("{} {namespace}/{name} does not exist", resource.kind()));
        merge(&mut object, &change.0);
        self.put(resource, namespace, name, object);
    }

    /// Adds a Deployment with `replicas` and pod labels `app=<name>` (its pods are up to the test).
    pub fn add_deployment(&self, namespace: &str, name: &str, replicas: i64) {
        self.put(Resource::Deployments, namespace, name, workload("Deployment", namespace, name, replicas));
    }

    /// Adds a StatefulSet with `replicas` and pod labels `app=<name>`. Its controller is simulated:
    /// pods `<name>-0 … <name>-(replicas-1)` exist and Run, and follow every change of replicas
    /// (the highest ordinals go first).
    pub fn add_statefulset(&self, namespace: &str, name: &str, replicas: i64) {
        self.put(Resource::StatefulSets, namespace, name, workload("StatefulSet", namespace, name, replicas));
    }

    /// Another writer changes a Deployment (e.g. `Change::to_replicas(5).annotate(…)`).
    pub fn change_deployment(&self, namespace: &str, name: &str, change: Change) {
        self.change(Resource::Deployments, namespace, name, &change);
    }

    /// Another writer changes a StatefulSet.
    pub fn change_statefulset(&self, namespace: &str, name: &str, change: Change) {
        self.change(Resource::StatefulSets, namespace, name, &change);
    }

    /// Another writer changes a Lease (`Change::merge(json!({ "spec": { "holderIdentity": "other" } }))`
    /// takes it over).
    pub fn change_lease(&self, namespace: &str, name: &str, change: Change) {
        self.change(Resource::Leases, namespace, name, &change);
    }

    /// Sets (or with `None` removes) an annotation on a Deployment, as `kubectl annotate` would.
    pub fn annotate(&self, namespace: &str, name: &str, key: &str, value: Option<&str>) {
        let change = match value {
            Some(value) => Change::annotation(key, value),
            None => Change::version_only().remove_annotation(key),
        };
        self.change_deployment(namespace, name, change);
    }

    /// Changes a Deployment's replicas behind the daemon's back (another writer).
    pub fn set_replicas(&self, namespace: &str, name: &str, replicas: i64) {
        self.change_deployment(namespace, name, Change::to_replicas(replicas));
    }

    /// A Deployment's `spec.replicas` now.
    pub fn replicas(&self, namespace: &str, name: &str) -> i64 {
        self.spec_replicas(Resource::Deployments, namespace, name)
    }

    /// A StatefulSet's `spec.replicas` now.
    pub fn statefulset_replicas(&self, namespace: &str, name: &str) -> i64 {
        self.spec_replicas(Resource::StatefulSets, namespace, name)
    }

    fn spec_replicas(&self, resource: Resource, namespace: &str, name: &str) -> i64 {
        let object = self.object(resource, namespace, name);
        let object = object.unwrap_or_else(|| panic!("{} {namespace}/{name} does not exist", resource.kind()));
        object["spec"]["replicas"].as_i64().expect("spec.replicas")
    }

    /// Adds (or replaces) a pod with these labels. `node`: scheduled there and Running; else
    /// Pending, and Unschedulable since `unschedulable_for` ago when given.
    pub fn put_pod(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        node: Option<&str>,
        unschedulable_for: Option<Duration>,
    ) {
        let labels: Map<String, Value> = labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        let placement = match (node, unschedulable_for) {
            (Some(node), _) => Placement::On(node),
            (None, Some(ago)) => Placement::UnschedulableFor(ago),
            (None, None) => Placement::Pending,
        };
        self.put(Resource::Pods, namespace, name, pod(namespace, name, labels, placement));
    }

    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.lock().delete(&Key::new(Resource::Pods, namespace, name));
    }

    /// The names of the pods in `namespace`, sorted.
    pub fn pod_names(&self, namespace: &str) -> Vec<String> {
        let pods = self.lock().list(Resource::Pods, Some(namespace), &Selector::default());
        let mut names: Vec<String> =
            pods.iter().filter_map(|p| p["metadata"]["name"].as_str()).map(str::to_owned).collect();
        names.sort();
        names
    }

    /// A pod's annotations as they are now.
    pub fn pod_annotations(&self, namespace: &str, name: &str) -> Map<String, Value> {
        let pod = self.object(Resource::Pods, namespace, name).unwrap_or_else(|| panic!("no pod {namespace}/{name}"));
        pod["metadata"]["annotations"].as_object().cloned().unwrap_or_default()
    }

    /// Adds (or replaces) a spot node with these taint keys, cordoned or not.
    pub fn put_node(&self, name: &str, taints: &[&str], cordoned: bool) {
        self.put(Resource::Nodes, "", name, node(name, taints, cordoned));
    }

    /// A Lease as stored now.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.object(Resource::Leases, namespace, name)
    }

    /// Every `events.k8s.io/v1` Event stored.
    pub fn events(&self) -> Vec<Value> {
        self.objects(Resource::Events)
    }
}
