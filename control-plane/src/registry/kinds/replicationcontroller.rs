//! `v1 ReplicationController`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::{Value, json};

use super::super::printers::{age, containers_images, format_labels, n, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    clear_status, default_pod_spec, labels_from_template, non_negative, obj_mut, set_default,
    validate_forever_pod_template,
};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `replicationcontrollers` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
        true,
        ReplicationControllerStrategy,
    )
    .short_names(&["rc"])
    .categories(&["all"])
    .subresources(&[Subresource::Status, Subresource::Scale])
}

/// Upstream's `ReplicationController` strategy and printer.
pub struct ReplicationControllerStrategy;

/// A map selector as `labels.SelectorFromSet(...).String()`: sorted `k=v` joined by `,`.
fn map_selector(sel: &Value) -> String {
    let mut pairs: Vec<String> = sel
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    pairs.sort();
    pairs.join(",")
}

impl Strategy for ReplicationControllerStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::ReplicationController>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    /// Upstream's `SetDefaults_ReplicationController`: selector and labels from the template,
    /// one replica.
    fn default(&self, obj: &mut Value) {
        let template = obj["spec"]["template"].clone();
        let tl = template["metadata"]["labels"]
            .as_object()
            .filter(|l| !l.is_empty())
            .cloned();
        let spec = obj_mut(obj, "spec");
        if let Some(tl) = tl
            && spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(serde_json::Map::is_empty)
        {
            spec.insert("selector".into(), Value::Object(tl));
        }
        set_default(spec, "replicas", json!(1));
        if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(ps);
        }
        labels_from_template(obj, &template);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        let selector = spec["selector"].as_object().filter(|m| !m.is_empty());
        if selector.is_none() {
            causes.push(Cause::required("spec.selector"));
        }
        non_negative(&spec["replicas"], "spec.replicas", &mut causes);
        non_negative(
            &spec["minReadySeconds"],
            "spec.minReadySeconds",
            &mut causes,
        );
        if spec["template"].is_null() {
            causes.push(Cause::required("spec.template"));
            return causes;
        }
        let tl = &spec["template"]["metadata"]["labels"];
        if let Some(sel) = selector
            && !sel.iter().all(|(k, v)| tl.get(k) == Some(v))
        {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                tl,
                "`selector` does not match template `labels`",
            ));
        }
        validate_forever_pod_template(
            &spec["template"]["spec"],
            "spec.template.spec",
            "ReplicationController",
            &mut causes,
        );
        causes
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn scale_selector(&self, obj: &Value) -> String {
        map_selector(&obj["spec"]["selector"])
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("ReplicationController", path))
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
        let (cs, imgs) = containers_images(&o["spec"]["template"]["spec"]);
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(n(&o["spec"]["replicas"])),
            json!(n(&o["status"]["replicas"])),
            json!(n(&o["status"]["readyReplicas"])),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(cs),
            json!(imgs),
            json!(format_labels(&o["spec"]["selector"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn nginx() -> Value {
        let mut rc = json!({"metadata": {"name": "nginx"}, "spec": {"template": {
            "metadata": {"labels": {"app": "nginx", "tier": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
        ReplicationControllerStrategy.prepare_create(&mut rc);
        ReplicationControllerStrategy.default(&mut rc);
        rc
    }

    #[test]
    fn defaults_from_template() {
        let rc = nginx();
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(
            rc["spec"]["selector"],
            json!({"app": "nginx", "tier": "web"})
        );
        assert_eq!(
            rc["metadata"]["labels"],
            json!({"app": "nginx", "tier": "web"})
        );
        assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(ReplicationControllerStrategy.validate(&rc, &CX).is_empty());
        assert_eq!(
            ReplicationControllerStrategy.scale_selector(&rc),
            "app=nginx,tier=web"
        );
    }

    #[test]
    fn selector_must_match_template() {
        let mut rc = nginx();
        rc["spec"]["selector"] = json!({"app": "other"});
        let causes = ReplicationControllerStrategy.validate(&rc, &CX);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        let mut no_template = json!({"metadata": {"name": "x"}, "spec": {}});
        ReplicationControllerStrategy.default(&mut no_template);
        let causes = ReplicationControllerStrategy.validate(&no_template, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.selector", "spec.template"]);
    }

    #[test]
    fn selector_may_change() {
        let old = nginx();
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"app": "nginx"});
        assert!(
            ReplicationControllerStrategy
                .validate_update(&old, &new)
                .is_empty()
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let mut rc = nginx();
        rc["spec"]["replicas"] = json!(3);
        rc["status"] = json!({"replicas": 3, "readyReplicas": 1});
        let c = ReplicationControllerStrategy.cells(&rc);
        assert_eq!(c.len(), ReplicationControllerStrategy.columns().len());
        assert_eq!(c[1..4], [json!(3), json!(3), json!(1)]);
        assert_eq!(c[7], "app=nginx,tier=web");
    }
}
