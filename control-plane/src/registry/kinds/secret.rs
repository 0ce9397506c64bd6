//! `v1 Secret`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};
use super::super::validation::set_default;

/// The `secrets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        true,
        SecretStrategy,
    )
}

/// Upstream's `Secret` strategy and printer.
pub struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Secret>(input)
    }

    fn default(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            set_default(m, "type", json!("Opaque"));
        }
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["type"]
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Secret", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        vec![
            name,
            json!(s(&o["type"])),
            json!(o["data"].as_object().map_or(0, serde_json::Map::len)),
            a,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            SecretStrategy.cells(&json!({})).len(),
            SecretStrategy.columns().len()
        );
    }
}
