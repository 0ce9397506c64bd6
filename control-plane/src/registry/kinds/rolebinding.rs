//! `rbac.authorization.k8s.io/v1 RoleBinding`: its strategy and resource entry.

use k8s_openapi::api::rbac;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `rolebindings` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        RoleBindingStrategy,
    )
}

/// Upstream's `RoleBinding` strategy and printer.
pub struct RoleBindingStrategy;

impl Strategy for RoleBindingStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::RoleBinding>(input)
    }
}
