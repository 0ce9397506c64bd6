//! `networking.k8s.io/v1 NetworkPolicy`: its strategy and resource entry.

use k8s_openapi::api::networking;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `networkpolicies` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        NetworkPolicyStrategy,
    )
    .short_names(&["netpol"])
}

/// Upstream's `NetworkPolicy` strategy and printer.
pub struct NetworkPolicyStrategy;

impl Strategy for NetworkPolicyStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<networking::v1::NetworkPolicy>(input)
    }
}
