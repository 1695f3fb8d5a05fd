//! Kubernetes failures, with bounded labels for metrics.

/// Why a read or write of a Deployment failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("no Kubernetes cluster configured (in-cluster or KUBECONFIG): {0}")]
    NoCluster(String),
    #[error("the Deployment does not exist")]
    NotFound,
    #[error("the Deployment changed while we wrote it (409 conflict), even after re-reading")]
    Conflict,
    #[error("forbidden: check the daemon's RBAC ({0})")]
    Forbidden(String),
    #[error("the API server answered {code}: {message}")]
    Api { code: u16, message: String },
    #[error("could not reach the API server: {0}")]
    Transport(String),
}

impl TargetError {
    pub fn label(&self) -> &'static str {
        match self {
            TargetError::NoCluster(_) => "no_cluster",
            TargetError::NotFound => "not_found",
            TargetError::Conflict => "conflict",
            TargetError::Forbidden(_) => "forbidden",
            TargetError::Api { .. } => "api",
            TargetError::Transport(_) => "transport",
        }
    }

    /// Every label, Kubernetes errors and those of busy-aware scale-in, for zero registration.
    pub const LABELS: [&'static str; 8] =
        ["no_cluster", "not_found", "conflict", "forbidden", "api", "transport", "busy_source", "no_selector"];

    pub(super) fn from_kube(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                404 => TargetError::NotFound,
                409 => TargetError::Conflict,
                401 | 403 => TargetError::Forbidden(status.message),
                code => TargetError::Api { code, message: status.message },
            },
            other => TargetError::Transport(other.to_string()),
        }
    }
}
