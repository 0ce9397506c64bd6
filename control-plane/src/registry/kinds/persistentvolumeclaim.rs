//! `v1 PersistentVolumeClaim`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `persistentvolumeclaims` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        PersistentVolumeClaimStrategy,
    )
    .short_names(&["pvc"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `PersistentVolumeClaim` strategy and printer.
pub struct PersistentVolumeClaimStrategy;

impl Strategy for PersistentVolumeClaimStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::PersistentVolumeClaim>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
