//! `storage.k8s.io/v1 CSIDriver`: its strategy and resource entry.

use k8s_openapi::api::storage;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `csidrivers` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "storage.k8s.io",
        "v1",
        "csidrivers",
        "csidriver",
        "CSIDriver",
        false,
        CsiDriverStrategy,
    )
}

/// Upstream's `CSIDriver` strategy and printer.
pub struct CsiDriverStrategy;

impl Strategy for CsiDriverStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<storage::v1::CSIDriver>(input)
    }
}
