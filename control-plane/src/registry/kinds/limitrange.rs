//! `v1 LimitRange`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `limitranges` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "limitranges",
        "limitrange",
        "LimitRange",
        true,
        LimitRangeStrategy,
    )
    .short_names(&["limits"])
}

/// Upstream's `LimitRange` strategy and printer.
pub struct LimitRangeStrategy;

impl Strategy for LimitRangeStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::LimitRange>(input)
    }
}
