//! `apps/v1 ControllerRevision`: its strategy and resource entry.

use k8s_openapi::api::apps;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `controllerrevisions` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        ControllerRevisionStrategy,
    )
}

/// Upstream's `ControllerRevision` strategy and printer.
pub struct ControllerRevisionStrategy;

impl Strategy for ControllerRevisionStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<apps::v1::ControllerRevision>(input)
    }
}
