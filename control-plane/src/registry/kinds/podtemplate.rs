//! `v1 PodTemplate`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Strategy, typed};

/// The `podtemplates` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "podtemplates",
        "podtemplate",
        "PodTemplate",
        true,
        PodTemplateStrategy,
    )
}

/// Upstream's `PodTemplate` strategy and printer.
pub struct PodTemplateStrategy;

impl Strategy for PodTemplateStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::PodTemplate>(input)
    }
}
