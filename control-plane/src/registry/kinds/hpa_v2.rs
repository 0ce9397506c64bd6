//! `autoscaling/v2 HorizontalPodAutoscaler`: its strategy and resource entry.

use k8s_openapi::api::autoscaling;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `horizontalpodautoscalers` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        HpaV2Strategy,
    )
    .short_names(&["hpa"])
    .categories(&["all"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `HorizontalPodAutoscaler` strategy and printer.
pub struct HpaV2Strategy;

impl Strategy for HpaV2Strategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<autoscaling::v2::HorizontalPodAutoscaler>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
