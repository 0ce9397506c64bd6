//! `storage.k8s.io/v1 CSINode`: its strategy and resource entry.

use k8s_openapi::api::storage;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `csinodes` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "storage.k8s.io",
        "v1",
        "csinodes",
        "csinode",
        "CSINode",
        false,
        CsiNodeStrategy,
    )
}

/// Upstream's `CSINode` strategy and printer.
pub struct CsiNodeStrategy;

impl Strategy for CsiNodeStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<storage::v1::CSINode>(input)
    }
}
