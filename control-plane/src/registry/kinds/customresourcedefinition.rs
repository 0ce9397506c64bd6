//! `apiextensions.k8s.io/v1 CustomResourceDefinition`: its strategy and resource entry.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `customresourcedefinitions` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        CustomResourceDefinitionStrategy,
    )
    .short_names(&["crd", "crds"])
    .categories(&["api-extensions"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `CustomResourceDefinition` strategy and printer.
pub struct CustomResourceDefinitionStrategy;

impl Strategy for CustomResourceDefinitionStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::CustomResourceDefinition>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
