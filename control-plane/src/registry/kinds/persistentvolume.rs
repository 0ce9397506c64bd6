//! `v1 PersistentVolume`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `persistentvolumes` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        PersistentVolumeStrategy,
    )
    .short_names(&["pv"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `PersistentVolume` strategy and printer.
pub struct PersistentVolumeStrategy;

impl Strategy for PersistentVolumeStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::PersistentVolume>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
