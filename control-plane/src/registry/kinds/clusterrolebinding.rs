//! `rbac.authorization.k8s.io/v1 ClusterRoleBinding`: its strategy and resource entry.

use k8s_openapi::api::rbac;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `clusterrolebindings` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        ClusterRoleBindingStrategy,
    )
}

/// Upstream's `ClusterRoleBinding` strategy and printer.
pub struct ClusterRoleBindingStrategy;

impl Strategy for ClusterRoleBindingStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::ClusterRoleBinding>(input)
    }
}
