//! `apps/v1 DaemonSet`: its strategy and resource entry.

use k8s_openapi::api::apps;
use serde_json::{Value, json};

use super::super::printers::{age, containers_images, format_labels, n, s, selector_string};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    clear_status, default_pod_spec, int_or_percent, non_negative, obj_mut, selector_immutable,
    set_default, validate_selector_and_template,
};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `daemonsets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        DaemonSetStrategy,
    )
    .short_names(&["ds"])
    .categories(&["all"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `DaemonSet` strategy and printer.
pub struct DaemonSetStrategy;

/// Whether an int-or-percent is zero (`0` or `"0%"`).
fn is_zero(v: &Value) -> bool {
    v.as_i64() == Some(0) || v.as_str().is_some_and(|s| s.trim_end_matches('%') == "0")
}

impl Strategy for DaemonSetStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<apps::v1::DaemonSet>(input)
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

    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        set_default(spec, "revisionHistoryLimit", json!(10));
        let us = spec.entry("updateStrategy").or_insert_with(|| json!({}));
        if let Some(us) = us.as_object_mut() {
            set_default(us, "type", json!("RollingUpdate"));
            if us.get("type") == Some(&json!("RollingUpdate")) {
                let ru = us.entry("rollingUpdate").or_insert_with(|| json!({}));
                if let Some(ru) = ru.as_object_mut() {
                    set_default(ru, "maxUnavailable", json!(1));
                    set_default(ru, "maxSurge", json!(0));
                }
            }
        }
        if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(ps);
        }
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        validate_selector_and_template(spec, "DaemonSet", &mut causes);
        non_negative(
            &spec["minReadySeconds"],
            "spec.minReadySeconds",
            &mut causes,
        );
        non_negative(
            &spec["revisionHistoryLimit"],
            "spec.revisionHistoryLimit",
            &mut causes,
        );
        let us = &spec["updateStrategy"];
        match us["type"].as_str() {
            Some("OnDelete") | None => {}
            Some("RollingUpdate") => {
                let ru = &us["rollingUpdate"];
                let base = "spec.updateStrategy.rollingUpdate";
                int_or_percent(
                    &ru["maxUnavailable"],
                    &format!("{base}.maxUnavailable"),
                    &mut causes,
                );
                int_or_percent(&ru["maxSurge"], &format!("{base}.maxSurge"), &mut causes);
                if is_zero(&ru["maxUnavailable"]) && is_zero(&ru["maxSurge"]) {
                    causes.push(Cause::invalid(
                        format!("{base}.maxUnavailable"),
                        &ru["maxUnavailable"],
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
            Some(other) => causes.push(Cause::not_supported(
                "spec.updateStrategy.type",
                &json!(other),
                &["OnDelete", "RollingUpdate"],
            )),
        }
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        selector_immutable(old, new)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("DaemonSet", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Node Selector", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let st = &o["status"];
        let tspec = &o["spec"]["template"]["spec"];
        let (cs, imgs) = containers_images(tspec);
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(n(&st["desiredNumberScheduled"])),
            json!(n(&st["currentNumberScheduled"])),
            json!(n(&st["numberReady"])),
            json!(n(&st["updatedNumberScheduled"])),
            json!(n(&st["numberAvailable"])),
            json!(format_labels(&tspec["nodeSelector"])),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(cs),
            json!(imgs),
            json!(selector_string(&o["spec"]["selector"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn agent() -> Value {
        let mut d = json!({"metadata": {"name": "agent"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "containers": [{"name": "agent", "image": "agent:1"}]}}}});
        DaemonSetStrategy.prepare_create(&mut d);
        DaemonSetStrategy.default(&mut d);
        d
    }

    #[test]
    fn defaults() {
        let d = agent();
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(
            d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
            1
        );
        assert_eq!(d["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"], 0);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(DaemonSetStrategy.validate(&d, &CX).is_empty());
        let mut on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        DaemonSetStrategy.default(&mut on_delete);
        assert!(on_delete["spec"]["updateStrategy"]["rollingUpdate"].is_null());
    }

    #[test]
    fn validation_paths() {
        let mut d = agent();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(0);
        let causes = DaemonSetStrategy.validate(&d, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.template.metadata.labels",
                "spec.updateStrategy.rollingUpdate.maxUnavailable"
            ]
        );
        let mut empty = agent();
        empty["spec"]["selector"] = json!({});
        let causes = DaemonSetStrategy.validate(&empty, &CX);
        assert!(
            causes[0]
                .message
                .ends_with("empty selector is invalid for daemonset")
        );
    }

    #[test]
    fn selector_is_immutable() {
        let old = agent();
        let mut new = old.clone();
        new["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        assert_eq!(
            DaemonSetStrategy.validate_update(&old, &new)[0].field,
            "spec.selector"
        );
        let mut image = old.clone();
        image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        assert!(DaemonSetStrategy.validate_update(&old, &image).is_empty());
    }

    #[test]
    fn cells_like_kubectl() {
        let mut d = agent();
        d["status"] = json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
            "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2});
        let c = DaemonSetStrategy.cells(&d);
        assert_eq!(c.len(), DaemonSetStrategy.columns().len());
        assert_eq!(c[1..6], [json!(3), json!(3), json!(2), json!(3), json!(2)]);
        assert_eq!(c[6], "kubernetes.io/os=linux");
        assert_eq!(c[10], "app=agent");
        assert_eq!(DaemonSetStrategy.cells(&json!({}))[6], "<none>");
    }
}
