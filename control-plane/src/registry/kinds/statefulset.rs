//! `apps/v1 StatefulSet`: its strategy and resource entry.

use k8s_openapi::api::apps;
use serde_json::{Value, json};

use super::super::printers::{age, containers_images, n, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    clear_status, default_pod_spec, non_negative, obj_mut, set_default,
    validate_selector_and_template,
};
use super::super::{Resource, Subresource};
use super::persistentvolumeclaim::default_claim;
use crate::apiserver::status::Cause;

/// The `statefulsets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        StatefulSetStrategy,
    )
    .short_names(&["sts"])
    .categories(&["all"])
    .subresources(&[Subresource::Status, Subresource::Scale])
}

/// Upstream's `StatefulSet` strategy and printer.
pub struct StatefulSetStrategy;

/// The spec fields an update may change (upstream's `ValidateStatefulSetUpdate`).
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn immutable_view(spec: &Value) -> Value {
    let mut v = spec.clone();
    if let Some(m) = v.as_object_mut() {
        for f in MUTABLE {
            m.remove(*f);
        }
    }
    v
}

impl Strategy for StatefulSetStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<apps::v1::StatefulSet>(input)
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
        set_default(spec, "podManagementPolicy", json!("OrderedReady"));
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        if let Some(us) = spec
            .entry("updateStrategy")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            if us.get("type").is_none_or(Value::is_null) {
                us.insert("type".into(), json!("RollingUpdate"));
                set_default(us, "rollingUpdate", json!({}));
            }
            if us.get("type") == Some(&json!("RollingUpdate"))
                && let Some(ru) = us.get_mut("rollingUpdate").and_then(Value::as_object_mut)
            {
                set_default(ru, "partition", json!(0));
            }
        }
        if let Some(p) = spec
            .entry("persistentVolumeClaimRetentionPolicy")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            set_default(p, "whenDeleted", json!("Retain"));
            set_default(p, "whenScaled", json!("Retain"));
        }
        if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(ps);
        }
        for claim in spec
            .get_mut("volumeClaimTemplates")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            default_claim(claim);
        }
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        match spec["podManagementPolicy"].as_str() {
            Some("OrderedReady" | "Parallel") => {}
            None | Some("") => causes.push(Cause::required("spec.podManagementPolicy")),
            Some(other) => causes.push(Cause::not_supported(
                "spec.podManagementPolicy",
                &json!(other),
                &["OrderedReady", "Parallel"],
            )),
        }
        let us = &spec["updateStrategy"];
        match us["type"].as_str() {
            Some("RollingUpdate") => non_negative(
                &us["rollingUpdate"]["partition"],
                "spec.updateStrategy.rollingUpdate.partition",
                &mut causes,
            ),
            Some("OnDelete") => {
                if !us["rollingUpdate"].is_null() {
                    causes.push(Cause::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        &us["rollingUpdate"],
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            None | Some("") => causes.push(Cause::required("spec.updateStrategy")),
            Some(other) => causes.push(Cause::not_supported(
                "spec.updateStrategy.type",
                &json!(other),
                &["OnDelete", "RollingUpdate"],
            )),
        }
        for f in ["whenDeleted", "whenScaled"] {
            if let Some(p) = spec["persistentVolumeClaimRetentionPolicy"][f].as_str()
                && !["Retain", "Delete"].contains(&p)
            {
                causes.push(Cause::not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{f}"),
                    &json!(p),
                    &["Retain", "Delete"],
                ));
            }
        }
        non_negative(&spec["replicas"], "spec.replicas", &mut causes);
        non_negative(
            &spec["minReadySeconds"],
            "spec.minReadySeconds",
            &mut causes,
        );
        non_negative(
            &spec["ordinals"]["start"],
            "spec.ordinals.start",
            &mut causes,
        );
        validate_selector_and_template(spec, "StatefulSet", &mut causes);
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        if immutable_view(&old["spec"]) == immutable_view(&new["spec"]) {
            Vec::new()
        } else {
            vec![Cause::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            )]
        }
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("StatefulSet", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let (cs, imgs) = containers_images(&o["spec"]["template"]["spec"]);
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(format!(
                "{}/{}",
                n(&o["status"]["readyReplicas"]),
                n(&o["spec"]["replicas"])
            )),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(cs),
            json!(imgs),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn web() -> Value {
        let mut st = json!({"metadata": {"name": "web"}, "spec": {"serviceName": "nginx",
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {
                "containers": [{"name": "nginx", "image": "nginx:1.27"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
        StatefulSetStrategy.prepare_create(&mut st);
        StatefulSetStrategy.default(&mut st);
        st
    }

    #[test]
    fn defaults() {
        let st = web();
        let spec = &st["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        assert_eq!(spec["serviceName"], "nginx");
        assert!(StatefulSetStrategy.validate(&st, &CX).is_empty());
    }

    #[test]
    fn validation_paths() {
        let mut st = web();
        st["spec"]["podManagementPolicy"] = json!("Random");
        st["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let causes = StatefulSetStrategy.validate(&st, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.podManagementPolicy",
                "spec.template.spec.restartPolicy"
            ]
        );
    }

    #[test]
    fn only_some_fields_change() {
        let old = web();
        let mut ok = old.clone();
        ok["spec"]["replicas"] = json!(3);
        ok["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        ok["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        assert!(StatefulSetStrategy.validate_update(&old, &ok).is_empty());
        let mut bad = old.clone();
        bad["spec"]["serviceName"] = json!("other");
        let causes = StatefulSetStrategy.validate_update(&old, &bad);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        assert_eq!(causes[0].reason, "FieldValueForbidden");
    }

    #[test]
    fn cells_like_kubectl() {
        let mut st = web();
        st["spec"]["replicas"] = json!(3);
        st["status"] = json!({"readyReplicas": 2});
        let c = StatefulSetStrategy.cells(&st);
        assert_eq!(c.len(), StatefulSetStrategy.columns().len());
        assert_eq!(c[1], "2/3");
        assert_eq!(c[3], "nginx");
        assert_eq!(c[4], "nginx:1.27");
    }
}
