//! `rbac.authorization.k8s.io/v1 ClusterRole`: its strategy and resource entry.

use k8s_openapi::api::rbac;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `clusterroles` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        ClusterRoleStrategy,
    )
}

/// Upstream's `ClusterRole` strategy and printer.
pub struct ClusterRoleStrategy;

impl Strategy for ClusterRoleStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::ClusterRole>(input)
    }
}
