//! `policy/v1 PodDisruptionBudget`: its strategy and resource entry.

use k8s_openapi::api::policy;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `poddisruptionbudgets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        PodDisruptionBudgetStrategy,
    )
    .short_names(&["pdb"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `PodDisruptionBudget` strategy and printer.
pub struct PodDisruptionBudgetStrategy;

impl Strategy for PodDisruptionBudgetStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<policy::v1::PodDisruptionBudget>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
