//! `v1 ResourceQuota`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `resourcequotas` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        ResourceQuotaStrategy,
    )
    .short_names(&["quota"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `ResourceQuota` strategy and printer.
pub struct ResourceQuotaStrategy;

impl Strategy for ResourceQuotaStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::ResourceQuota>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
