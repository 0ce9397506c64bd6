//! `scheduling.k8s.io/v1 PriorityClass`: its strategy and resource entry.

use k8s_openapi::api::scheduling;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `priorityclasses` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        PriorityClassStrategy,
    )
    .short_names(&["pc"])
}

/// Upstream's `PriorityClass` strategy and printer.
pub struct PriorityClassStrategy;

impl Strategy for PriorityClassStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<scheduling::v1::PriorityClass>(input)
    }
}
