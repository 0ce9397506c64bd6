//! `apps/v1 ReplicaSet`: its strategy and resource entry.

use k8s_openapi::api::apps::v1;
use serde_json::{Value, json};

use super::super::printers::{age, s};
use super::super::printers::{containers_images, n, selector_string};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{default_workload, selector_immutable, validate_workload};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `replicasets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        ReplicaSetStrategy,
    )
    .short_names(&["rs"])
    .categories(&["all"])
    .subresources(&[Subresource::Status, Subresource::Scale])
}

/// Upstream's `ReplicaSet` strategy and printer.
pub struct ReplicaSetStrategy;

impl Strategy for ReplicaSetStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::ReplicaSet>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        default_workload(obj, false);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_workload(obj, false, &mut causes);
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        selector_immutable(old, new)
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("ReplicaSet", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        let (cs, imgs) = containers_images(&o["spec"]["template"]["spec"]);
        vec![
            name,
            json!(n(&o["spec"]["replicas"])),
            json!(n(&o["status"]["replicas"])),
            json!(n(&o["status"]["readyReplicas"])),
            a,
            json!(cs),
            json!(imgs),
            json!(selector_string(&o["spec"]["selector"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            ReplicaSetStrategy.cells(&json!({})).len(),
            ReplicaSetStrategy.columns().len()
        );
    }
}
