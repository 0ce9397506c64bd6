//! `v1 ReplicationController`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `replicationcontrollers` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
        true,
        ReplicationControllerStrategy,
    )
    .short_names(&["rc"])
    .categories(&["all"])
    .subresources(&[Subresource::Status, Subresource::Scale])
}

/// Upstream's `ReplicationController` strategy and printer.
pub struct ReplicationControllerStrategy;

impl Strategy for ReplicationControllerStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::ReplicationController>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
