//! `rbac.authorization.k8s.io/v1 Role`: its strategy and resource entry.

use k8s_openapi::api::rbac;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `roles` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        RoleStrategy,
    )
}

/// Upstream's `Role` strategy and printer.
pub struct RoleStrategy;

impl Strategy for RoleStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::Role>(input)
    }
}
