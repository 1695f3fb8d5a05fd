//! The resources the server knows: where they live in the URL space and what discovery says of them.

/// A served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Deployments,
    StatefulSets,
    Pods,
    Nodes,
    Leases,
    Events,
}

impl Resource {
    pub const ALL: [Resource; 6] = [
        Resource::Deployments,
        Resource::StatefulSets,
        Resource::Pods,
        Resource::Nodes,
        Resource::Leases,
        Resource::Events,
    ];

    /// The resource named `plural` in `group` (`""` for the core group), version v1.
    pub fn find(group: &str, version: &str, plural: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.group() == group && version == "v1" && r.plural() == plural)
    }

    pub fn plural(self) -> &'static str {
        match self {
            Resource::Deployments => "deployments",
            Resource::StatefulSets => "statefulsets",
            Resource::Pods => "pods",
            Resource::Nodes => "nodes",
            Resource::Leases => "leases",
            Resource::Events => "events",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Deployments => "Deployment",
            Resource::StatefulSets => "StatefulSet",
            Resource::Pods => "Pod",
            Resource::Nodes => "Node",
            Resource::Leases => "Lease",
            Resource::Events => "Event",
        }
    }

    /// The API group, `""` for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Resource::Deployments | Resource::StatefulSets => "apps",
            Resource::Pods | Resource::Nodes => "",
            Resource::Leases => "coordination.k8s.io",
            Resource::Events => "events.k8s.io",
        }
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(self) -> String {
        match self.group() {
            "" => "v1".to_owned(),
            group => format!("{group}/v1"),
        }
    }

    /// `deployments.apps`, as the real server names a resource in its messages.
    pub fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }

    pub fn namespaced(self) -> bool {
        self != Resource::Nodes
    }

    /// Whether it has a `scale` subresource (autoscaling/v1 Scale).
    pub fn scalable(self) -> bool {
        matches!(self, Resource::Deployments | Resource::StatefulSets)
    }

    /// Whether a PUT without `metadata.resourceVersion` is allowed (`AllowUnconditionalUpdate` of
    /// the resource's registry strategy in kubernetes pkg/registry; false for Leases).
    pub fn allows_unconditional_update(self) -> bool {
        self != Resource::Leases
    }

    /// Whether a PUT may create the object (`AllowCreateOnUpdate`; true for Leases).
    pub fn allows_create_on_update(self) -> bool {
        self == Resource::Leases
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Resource::Deployments => &["deploy"],
            Resource::StatefulSets => &["sts"],
            Resource::Pods => &["po"],
            Resource::Nodes => &["no"],
            Resource::Leases | Resource::Events => &[],
        }
    }
}
