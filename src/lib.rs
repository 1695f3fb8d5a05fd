//! queue-autoscaler: polls queue sources, decides replicas, patches Deployments.
//!
//! ```text
//! main ─► app ─┬─► config   TOML + env → validated values
//!              ├─► source   one poll per source per cycle (celery …)
//!              ├─► policy   pure: observations + history + now → Decision
//!              ├─► k8s      the Kubernetes edge: Deployments (scale, Events), pods, Nodes, Lease
//!              └─► metrics, admin   /metrics /healthz /readyz
//! rbac: config → the least Kubernetes RBAC it needs (the `rbac` command)
//! ```

pub mod admin;
pub mod app;
pub mod commands;
pub mod config;
pub mod k8s;
pub mod metrics;
pub mod policy;
pub mod rbac;
pub mod secret;
pub mod simulate;
pub mod source;
