//! `apps/v1 Deployment`: its strategy and resource entry.

use k8s_openapi::api::apps::v1;
use serde_json::{Value, json};

use super::super::printers::{age, s};
use super::super::printers::{containers_images, n, selector_string};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{default_workload, selector_immutable, validate_workload};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `deployments` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        DeploymentStrategy,
    )
    .short_names(&["deploy"])
    .categories(&["all"])
    .subresources(&[Subresource::Status, Subresource::Scale])
}

/// Upstream's `Deployment` strategy and printer.
pub struct DeploymentStrategy;

impl Strategy for DeploymentStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Deployment>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        default_workload(obj, true);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_workload(obj, true, &mut causes);
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        selector_immutable(old, new)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Deployment", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
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
            json!(format!(
                "{}/{}",
                n(&o["status"]["readyReplicas"]),
                n(&o["spec"]["replicas"])
            )),
            json!(n(&o["status"]["updatedReplicas"])),
            json!(n(&o["status"]["availableReplicas"])),
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
    fn deployment_cells() {
        let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "img:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = DeploymentStrategy.cells(&d);
        assert_eq!(c[1], "2/3");
        assert_eq!(c[5], "web");
        assert_eq!(c[6], "img:1");
    }

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            DeploymentStrategy.cells(&json!({})).len(),
            DeploymentStrategy.columns().len()
        );
    }
}
