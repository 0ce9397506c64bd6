//! `apps/v1 StatefulSet`: its strategy and resource entry.

use k8s_openapi::api::apps;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `statefulsets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        StatefulSetStrategy,
    )
    .short_names(&["sts"])
    .categories(&["all"])
    .subresources(&[Subresource::Status, Subresource::Scale])
}

/// Upstream's `StatefulSet` strategy and printer.
pub struct StatefulSetStrategy;

impl Strategy for StatefulSetStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<apps::v1::StatefulSet>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
