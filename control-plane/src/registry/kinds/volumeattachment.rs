//! `storage.k8s.io/v1 VolumeAttachment`: its strategy and resource entry.

use k8s_openapi::api::storage;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `volumeattachments` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "storage.k8s.io",
        "v1",
        "volumeattachments",
        "volumeattachment",
        "VolumeAttachment",
        false,
        VolumeAttachmentStrategy,
    )
    .subresources(&[Subresource::Status])
}

/// Upstream's `VolumeAttachment` strategy and printer.
pub struct VolumeAttachmentStrategy;

impl Strategy for VolumeAttachmentStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<storage::v1::VolumeAttachment>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
