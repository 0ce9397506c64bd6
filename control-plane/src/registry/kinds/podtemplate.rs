//! `v1 PodTemplate`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{containers_images, format_labels, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{default_pod_spec, validate_containers};
use crate::apiserver::status::Cause;

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

    /// A change of `template` bumps the generation.
    fn uses_generation(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        if let Some(ps) = obj.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(ps);
        }
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_containers(&obj["template"]["spec"], "template.spec", &mut causes);
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("PodTemplate", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Containers", "string", 0),
            col("Images", "string", 0),
            col("Pod Labels", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let (cs, imgs) = containers_images(&o["template"]["spec"]);
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(cs),
            json!(imgs),
            json!(format_labels(&o["template"]["metadata"]["labels"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn template() -> Value {
        let mut t = json!({"metadata": {"name": "t"}, "template": {
            "metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}, {"name": "d", "image": "redis"}]}}});
        PodTemplateStrategy.default(&mut t);
        t
    }

    #[test]
    fn defaults_and_validation() {
        let t = template();
        assert_eq!(t["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            t["template"]["spec"]["containers"][1]["imagePullPolicy"],
            "Always"
        );
        assert!(PodTemplateStrategy.validate(&t, &CX).is_empty());
        let mut bad = t.clone();
        bad["template"]["spec"]["containers"][0]["image"] = json!("");
        let causes = PodTemplateStrategy.validate(&bad, &CX);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "template.spec.containers[0].image");
    }

    #[test]
    fn template_may_change() {
        let old = template();
        let mut new = old.clone();
        new["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert!(PodTemplateStrategy.validate_update(&old, &new).is_empty());
    }

    #[test]
    fn cells_like_kubectl() {
        let c = PodTemplateStrategy.cells(&template());
        assert_eq!(c.len(), PodTemplateStrategy.columns().len());
        assert_eq!(
            c[1..],
            [json!("c,d"), json!("nginx:1,redis"), json!("a=1,b=2")]
        );
    }
}
