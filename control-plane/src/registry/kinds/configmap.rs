//! `v1 ConfigMap`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};

/// The `configmaps` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        ConfigMapStrategy,
    )
    .short_names(&["cm"])
}

/// Upstream's `ConfigMap` strategy and printer.
pub struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::ConfigMap>(input)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("ConfigMap", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        let count = o["data"].as_object().map_or(0, serde_json::Map::len)
            + o["binaryData"].as_object().map_or(0, serde_json::Map::len);
        vec![name, json!(count), a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            ConfigMapStrategy.cells(&json!({})).len(),
            ConfigMapStrategy.columns().len()
        );
    }
}
