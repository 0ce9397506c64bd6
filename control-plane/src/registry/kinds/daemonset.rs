//! `apps/v1 DaemonSet`: its strategy and resource entry.

use k8s_openapi::api::apps;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `daemonsets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        DaemonSetStrategy,
    )
    .short_names(&["ds"])
    .categories(&["all"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `DaemonSet` strategy and printer.
pub struct DaemonSetStrategy;

impl Strategy for DaemonSetStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<apps::v1::DaemonSet>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
