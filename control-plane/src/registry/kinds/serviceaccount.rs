//! `v1 ServiceAccount`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};

/// The `serviceaccounts` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        ServiceAccountStrategy,
    )
    .short_names(&["sa"])
}

/// Upstream's `ServiceAccount` strategy and printer.
pub struct ServiceAccountStrategy;

impl Strategy for ServiceAccountStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::ServiceAccount>(input)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("ServiceAccount", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Secrets", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        vec![name, json!(o["secrets"].as_array().map_or(0, Vec::len)), a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            ServiceAccountStrategy.cells(&json!({})).len(),
            ServiceAccountStrategy.columns().len()
        );
    }
}
