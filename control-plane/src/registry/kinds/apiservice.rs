//! `apiregistration.k8s.io/v1 APIService`: its strategy and resource entry.

use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `apiservices` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "apiservice",
        "APIService",
        false,
        ApiServiceStrategy,
    )
    .subresources(&[Subresource::Status])
}

/// Upstream's `APIService` strategy and printer.
pub struct ApiServiceStrategy;

impl Strategy for ApiServiceStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::APIService>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
