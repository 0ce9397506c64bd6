//! `networking.k8s.io/v1 Ingress`: its strategy and resource entry.

use k8s_openapi::api::networking;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `ingresses` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        IngressStrategy,
    )
    .short_names(&["ing"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `Ingress` strategy and printer.
pub struct IngressStrategy;

impl Strategy for IngressStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<networking::v1::Ingress>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
