//! `v1 Namespace`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, NameRule, Strategy, col, typed};
use super::super::validation::{obj_mut, set_default};
use super::super::{Resource, Subresource};

/// The `namespaces` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        NamespaceStrategy,
    )
    .short_names(&["ns"])
    .subresources(&[Subresource::Status, Subresource::Finalize])
}

/// Upstream's `Namespace` strategy and printer.
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Namespace>(input)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.get_mut("status").and_then(Value::as_object_mut) {
            m.remove("phase");
        }
    }

    fn default(&self, obj: &mut Value) {
        set_default(obj_mut(obj, "spec"), "finalizers", json!(["kubernetes"]));
        set_default(obj_mut(obj, "status"), "phase", json!("Active"));
        let name = obj["metadata"]["name"].clone();
        let meta = obj_mut(obj, "metadata");
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), name);
        }
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.phase"]
    }

    fn deletion_pending(&self, obj: &Value) -> bool {
        obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    }

    fn mark_deleting(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Namespace", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        vec![name, json!(s(&o["status"]["phase"])), a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            NamespaceStrategy.cells(&json!({})).len(),
            NamespaceStrategy.columns().len()
        );
    }
}
