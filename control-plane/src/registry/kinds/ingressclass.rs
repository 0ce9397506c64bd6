//! `networking.k8s.io/v1 IngressClass`: its strategy and resource entry.

use k8s_openapi::api::networking;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `ingressclasses` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        IngressClassStrategy,
    )
}

/// Upstream's `IngressClass` strategy and printer.
pub struct IngressClassStrategy;

impl Strategy for IngressClassStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<networking::v1::IngressClass>(input)
    }
}
