//! Kubernetes failures, with bounded labels for metrics.

/// Why a read or write of a Deployment failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KubeError {
    #[error("no Kubernetes cluster configured (in-cluster or KUBECONFIG): {0}")]
    NoCluster(String),
    #[error("the Deployment does not exist")]
    NotFound,
    #[error("the Deployment changed since it was read (409 conflict); the next cycle reads it again")]
    Conflict,
    #[error("forbidden: check the daemon's RBAC ({0})")]
    Forbidden(String),
    #[error("the API server answered {code}: {message}")]
    Api { code: u16, message: String },
    #[error("could not reach the API server: {0}")]
    Transport(String),
}

impl KubeError {
    pub fn label(&self) -> &'static str {
        match self {
            KubeError::NoCluster(_) => "no_cluster",
            KubeError::NotFound => "not_found",
            KubeError::Conflict => "conflict",
            KubeError::Forbidden(_) => "forbidden",
            KubeError::Api { .. } => "api",
            KubeError::Transport(_) => "transport",
        }
    }

    /// Every label, Kubernetes errors and those of busy-aware scale-in, for zero registration.
    pub const LABELS: [&'static str; 8] =
        ["no_cluster", "not_found", "conflict", "forbidden", "api", "transport", "busy_source", "no_selector"];

    pub(super) fn from_kube(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                404 => KubeError::NotFound,
                409 => KubeError::Conflict,
                401 | 403 => KubeError::Forbidden(status.message),
                code => KubeError::Api { code, message: status.message },
            },
            other => KubeError::Transport(other.to_string()),
        }
    }
}
