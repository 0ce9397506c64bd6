//! `autoscaling/v2 HorizontalPodAutoscaler`: its strategy and resource entry. v2 is the stored
//! form; `autoscaling/v1` objects convert to it (`hpa_v1`).

use k8s_openapi::api::autoscaling;
use serde_json::{Value, json};

use super::super::printers::{age, n, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{clear_status, obj_mut, set_default};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `horizontalpodautoscalers` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        HpaV2Strategy,
    )
    .short_names(&["hpa"])
    .categories(&["all"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `HorizontalPodAutoscaler` strategy and printer.
pub struct HpaV2Strategy;

/// CPU utilization the autoscaler aims at when no metric is given.
pub(crate) const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// Upstream's `SetDefaults_HorizontalPodAutoscaler` (v2): one replica at least, CPU at 80%
/// when no metric is given, and every unset scaling rule of a given `behavior`.
pub(crate) fn default_v2(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    set_default(spec, "minReplicas", json!(1));
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]),
        );
    }
    if let Some(b) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
        let rules = [
            (
                "scaleUp",
                json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]}),
            ),
            (
                "scaleDown",
                json!({"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]}),
            ),
        ];
        for (dir, defaults) in rules {
            let r = b.entry(dir).or_insert_with(|| json!({}));
            if let (Some(r), Some(d)) = (r.as_object_mut(), defaults.as_object()) {
                for (k, v) in d {
                    set_default(r, k, v.clone());
                }
            }
        }
    }
}

/// Rules of both versions' specs: a target, and `1 <= minReplicas <= maxReplicas`.
pub(crate) fn validate_common(spec: &Value, causes: &mut Vec<Cause>) {
    for f in ["kind", "name"] {
        if spec["scaleTargetRef"][f].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required(format!("spec.scaleTargetRef.{f}")));
        }
    }
    let min = spec["minReplicas"].as_i64();
    if let Some(m) = min
        && m < 1
    {
        causes.push(Cause::invalid(
            "spec.minReplicas",
            &json!(m),
            "must be greater than or equal to 1",
        ));
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if let Some(m) = min
        && m > max
    {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
}

/// The source field of each metric type.
fn source_field(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "External" => "external",
        _ => return None,
    })
}

fn validate_metrics(spec: &Value, causes: &mut Vec<Cause>) {
    for (i, m) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        let p = format!("spec.metrics[{i}]");
        let ty = m["type"].as_str().unwrap_or_default();
        let Some(field) = source_field(ty) else {
            if ty.is_empty() {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    field: format!("{p}.type"),
                    message: "Required value: must specify a metric source type".into(),
                });
            } else {
                causes.push(Cause::not_supported(
                    format!("{p}.type"),
                    &json!(ty),
                    &[
                        "ContainerResource",
                        "External",
                        "Object",
                        "Pods",
                        "Resource",
                    ],
                ));
            }
            continue;
        };
        let src = &m[field];
        if src.is_null() {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: format!("{p}.{field}"),
                message: "Required value: must populate information for the given metric source"
                    .into(),
            });
            continue;
        }
        let target = &src["target"];
        let tp = format!("{p}.{field}.target");
        match target["type"].as_str() {
            Some("Utilization") => {
                if !matches!(field, "resource" | "containerResource") {
                    causes.push(Cause::not_supported(
                        format!("{tp}.type"),
                        &json!("Utilization"),
                        &["AverageValue", "Value"],
                    ));
                } else if target["averageUtilization"].as_i64().is_none_or(|u| u < 1) {
                    causes.push(Cause::invalid(
                        format!("{tp}.averageUtilization"),
                        &target["averageUtilization"],
                        "must be greater than 0",
                    ));
                }
            }
            Some("AverageValue") => {
                if target["averageValue"].is_null() {
                    causes.push(Cause::required(format!("{tp}.averageValue")));
                }
            }
            Some("Value") => {
                if target["value"].is_null() {
                    causes.push(Cause::required(format!("{tp}.value")));
                }
            }
            None => causes.push(Cause::required(format!("{tp}.type"))),
            Some(other) => causes.push(Cause::not_supported(
                format!("{tp}.type"),
                &json!(other),
                &["AverageValue", "Utilization", "Value"],
            )),
        }
    }
}

/// Upstream's `formatHPAMetrics`: `current/target` of the first two metrics.
fn format_metrics(spec: &Value, status: &Value) -> String {
    let specs = spec["metrics"].as_array().cloned().unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = status["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let unknown = || "<unknown>".to_string();
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let st = statuses.get(i).unwrap_or(&Value::Null);
            let ty = m["type"].as_str().unwrap_or_default();
            match ty {
                "External" | "Object" => {
                    let f = if ty == "External" {
                        "external"
                    } else {
                        "object"
                    };
                    let (t, c) = (&m[f]["target"], &st[f]["current"]);
                    if t["averageValue"].is_null() {
                        let cur = if st[f].is_null() {
                            unknown()
                        } else {
                            s(&c["value"])
                        };
                        format!("{cur}/{}", s(&t["value"]))
                    } else {
                        let cur = c["averageValue"]
                            .as_str()
                            .map_or_else(unknown, String::from);
                        format!("{cur}/{} (avg)", s(&t["averageValue"]))
                    }
                }
                "Pods" => {
                    let cur = if st["pods"].is_null() {
                        unknown()
                    } else {
                        s(&st["pods"]["current"]["averageValue"])
                    };
                    format!("{cur}/{}", s(&m["pods"]["target"]["averageValue"]))
                }
                "Resource" | "ContainerResource" => {
                    let f = if ty == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let (t, cs) = (&m[f]["target"], &st[f]);
                    let name = s(&m[f]["name"]);
                    if t["averageValue"].is_null() {
                        let cur = cs["current"]["averageUtilization"]
                            .as_i64()
                            .map_or_else(unknown, |u| format!("{u}%"));
                        let target = t["averageUtilization"]
                            .as_i64()
                            .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                        format!("{name}: {cur}/{target}")
                    } else {
                        let cur = if cs.is_null() {
                            unknown()
                        } else {
                            s(&cs["current"]["averageValue"])
                        };
                        format!("{name}: {cur}/{}", s(&t["averageValue"]))
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    if list.len() > 2 {
        format!("{} + {} more...", list[..2].join(", "), list.len() - 2)
    } else {
        list.join(", ")
    }
}

/// The printer's columns (both versions print the stored v2 form).
pub(crate) fn hpa_columns() -> Vec<Column> {
    vec![
        col("Name", "string", 0),
        col("Reference", "string", 0),
        col("Targets", "string", 0),
        col("MinPods", "string", 0),
        col("MaxPods", "string", 0),
        col("Replicas", "string", 0),
        col("Age", "string", 0),
    ]
}

/// One row of a v2 object.
pub(crate) fn hpa_cells(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let min = spec["minReplicas"]
        .as_i64()
        .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    vec![
        json!(s(&o["metadata"]["name"])),
        json!(format!(
            "{}/{}",
            s(&spec["scaleTargetRef"]["kind"]),
            s(&spec["scaleTargetRef"]["name"])
        )),
        json!(format_metrics(spec, &o["status"])),
        json!(min),
        json!(n(&spec["maxReplicas"])),
        json!(n(&o["status"]["currentReplicas"])),
        json!(age(&o["metadata"]["creationTimestamp"])),
    ]
}

impl Strategy for HpaV2Strategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<autoscaling::v2::HorizontalPodAutoscaler>(input)
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn default(&self, obj: &mut Value) {
        default_v2(obj);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_common(&obj["spec"], &mut causes);
        validate_metrics(&obj["spec"], &mut causes);
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("HorizontalPodAutoscaler", path))
    }

    fn columns(&self) -> Vec<Column> {
        hpa_columns()
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        hpa_cells(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn web() -> Value {
        let mut h = json!({"metadata": {"name": "web"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 10, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        HpaV2Strategy.prepare_create(&mut h);
        HpaV2Strategy.default(&mut h);
        h
    }

    #[test]
    fn defaults() {
        let h = web();
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(
            h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let b = &h["spec"]["behavior"];
        assert_eq!(b["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(b["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(
            b["scaleUp"]["policies"][0],
            json!({"type": "Pods", "value": 4, "periodSeconds": 15})
        );
        assert!(HpaV2Strategy.validate(&h, &CX).is_empty());
    }

    #[test]
    fn validation_paths() {
        let mut h = web();
        h["spec"]["minReplicas"] = json!(5);
        h["spec"]["maxReplicas"] = json!(2);
        h["spec"]["metrics"] = json!([{"type": "Pods", "pods": {"metric": {"name": "rps"},
            "target": {"type": "Utilization", "averageUtilization": 5}}}]);
        let causes = HpaV2Strategy.validate(&h, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.maxReplicas", "spec.metrics[0].pods.target.type"]
        );
        assert!(
            causes[0]
                .message
                .ends_with("must be greater than or equal to `minReplicas`")
        );
    }

    #[test]
    fn spec_may_change() {
        let old = web();
        let mut new = old.clone();
        new["spec"]["maxReplicas"] = json!(20);
        assert!(HpaV2Strategy.validate_update(&old, &new).is_empty());
    }

    #[test]
    fn cells_like_kubectl() {
        let mut h = web();
        h["spec"]["metrics"] = json!([
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]);
        h["status"] = json!({"currentReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12, "averageValue": "30m"}}}]});
        let c = HpaV2Strategy.cells(&h);
        assert_eq!(c.len(), HpaV2Strategy.columns().len());
        assert_eq!(c[1], "Deployment/web");
        assert_eq!(c[2], "cpu: 12%/50%, memory: <unknown>/100Mi + 1 more...");
        assert_eq!(c[3..6], [json!("1"), json!(10), json!(3)]);
        let fresh = web();
        assert_eq!(HpaV2Strategy.cells(&fresh)[2], "cpu: <unknown>/80%");
        assert_eq!(HpaV2Strategy.cells(&json!({}))[2], "<none>");
        assert_eq!(HpaV2Strategy.cells(&json!({}))[3], "<unset>");
    }
}
