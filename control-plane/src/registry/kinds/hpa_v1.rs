//! `autoscaling/v1 HorizontalPodAutoscaler`: its strategy and resource entry. Objects are
//! stored as `autoscaling/v2`; this version converts as upstream's conversion does:
//! `targetCPUUtilizationPercentage` is a `Resource` cpu `Utilization` metric,
//! `currentCPUUtilizationPercentage` its current value, and what v1 cannot say (other metrics,
//! their statuses, conditions, behavior) rides in `autoscaling.alpha.kubernetes.io/*`
//! annotations in v1's metric shapes.

use k8s_openapi::api::autoscaling;
use serde_json::{Map, Value, json};

use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, typed};
use super::super::validation::{clear_status, obj_mut, set_default};
use super::super::{Resource, Subresource};
use super::hpa_v2::{default_v2, hpa_cells, hpa_columns, validate_common};
use crate::apiserver::status::Cause;

/// The `horizontalpodautoscalers` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        HpaV1Strategy,
    )
    .short_names(&["hpa"])
    .categories(&["all"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `HorizontalPodAutoscaler` strategy and printer, seen through `autoscaling/v1`.
pub struct HpaV1Strategy;

/// Metrics other than the CPU utilization target, in v1's `MetricSpec` shape.
const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Every current metric, in v1's `MetricStatus` shape.
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// `spec.behavior`.
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// `status.conditions`.
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const ROUND_TRIP_ANNOTATIONS: [&str; 4] = [
    METRICS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
];

/// v1 field <-> v2 path of a metric source, per source field; `target` paths of specs read
/// `current` in statuses.
fn fields(source: &str, status: bool) -> Vec<(&'static str, [&'static str; 2])> {
    let (t, tv, tav, tau) = if status {
        (
            "current",
            "currentValue",
            "currentAverageValue",
            "currentAverageUtilization",
        )
    } else {
        (
            "target",
            "targetValue",
            "targetAverageValue",
            "targetAverageUtilization",
        )
    };
    match source {
        "resource" | "containerResource" => vec![
            ("name", ["name", ""]),
            ("container", ["container", ""]),
            (tau, [t, "averageUtilization"]),
            (tav, [t, "averageValue"]),
        ],
        "pods" => vec![
            ("metricName", ["metric", "name"]),
            ("selector", ["metric", "selector"]),
            (tav, [t, "averageValue"]),
        ],
        "object" => vec![
            ("target", ["describedObject", ""]),
            ("metricName", ["metric", "name"]),
            ("selector", ["metric", "selector"]),
            (tv, [t, "value"]),
            ("averageValue", [t, "averageValue"]),
        ],
        "external" => vec![
            ("metricName", ["metric", "name"]),
            ("metricSelector", ["metric", "selector"]),
            (tv, [t, "value"]),
            (tav, [t, "averageValue"]),
        ],
        _ => Vec::new(),
    }
}

fn get_path<'a>(v: &'a Value, path: [&str; 2]) -> &'a Value {
    if path[1].is_empty() {
        &v[path[0]]
    } else {
        &v[path[0]][path[1]]
    }
}

fn set_path(v: &mut Value, path: [&str; 2], x: Value) {
    if path[1].is_empty() {
        v[path[0]] = x;
    } else {
        v[path[0]][path[1]] = x;
    }
}

/// Which source field a metric of type `ty` fills.
fn source_of(ty: &str) -> &'static str {
    match ty {
        "Object" => "object",
        "Pods" => "pods",
        "ContainerResource" => "containerResource",
        "External" => "external",
        _ => "resource",
    }
}

/// A v2 metric spec or status in v1's shape.
fn metric_to_v1(m: &Value, status: bool) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let src = source_of(ty);
    let mut out = json!({});
    for (k, path) in fields(src, status) {
        let x = get_path(&m[src], path);
        if !x.is_null() {
            out[k] = x.clone();
        }
    }
    json!({"type": ty, src: out})
}

/// A v1-shaped metric spec or status in v2's.
fn metric_to_v2(m: &Value, status: bool) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let src = source_of(ty);
    let mut out = json!({});
    for (k, path) in fields(src, status) {
        let x = &m[src][k];
        if !x.is_null() {
            set_path(&mut out, path, x.clone());
        }
    }
    if !status {
        let t = &out["target"];
        let kind = if !t["averageUtilization"].is_null() {
            "Utilization"
        } else if !t["averageValue"].is_null() {
            "AverageValue"
        } else {
            "Value"
        };
        out["target"]["type"] = json!(kind);
    } else if out["current"].is_null() {
        out["current"] = json!({});
    }
    json!({"type": ty, src: out})
}

/// Whether a v2 metric is the CPU utilization target v1 has a field for.
fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && !m["resource"]["target"]["averageUtilization"].is_null()
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    obj_mut(obj_mut_value(obj, "metadata"), "annotations")
}

fn obj_mut_value<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    obj_mut(v, key);
    &mut v[key]
}

/// Drop the round-trip annotations, and the annotations map if nothing is left.
fn drop_round_trip(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        for k in ROUND_TRIP_ANNOTATIONS {
            a.remove(k);
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
}

/// A JSON list held in an annotation.
fn annotation_list(obj: &Value, key: &str) -> Option<Vec<Value>> {
    obj["metadata"]["annotations"][key]
        .as_str()
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
}

/// Copy the named fields of `from` that are set into `to`.
fn copy_fields(from: &Value, to: &mut Value, keys: &[&str]) {
    for k in keys {
        if !from[*k].is_null() {
            to[*k] = from[*k].clone();
        }
    }
}

const STATUS_COMMON: &[&str] = &[
    "observedGeneration",
    "lastScaleTime",
    "currentReplicas",
    "desiredReplicas",
];

/// Upstream's `Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler`.
fn v1_to_v2(v1: &Value) -> Value {
    let mut out = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": v1["metadata"].clone()});
    let spec = &v1["spec"];
    let mut s2 = json!({});
    copy_fields(
        spec,
        &mut s2,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    let mut metrics: Vec<Value> = annotation_list(v1, METRICS_ANNOTATION)
        .unwrap_or_default()
        .iter()
        .map(|m| metric_to_v2(m, false))
        .collect();
    if let Some(cpu) = spec["targetCPUUtilizationPercentage"].as_i64() {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}));
    }
    if !metrics.is_empty() {
        s2["metrics"] = Value::Array(metrics);
    }
    if let Some(b) = v1["metadata"]["annotations"][BEHAVIOR_ANNOTATION]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    {
        s2["behavior"] = b;
    }
    out["spec"] = s2;
    if let Some(status) = v1.get("status").filter(|s| s.is_object()) {
        let mut st = json!({});
        copy_fields(status, &mut st, STATUS_COMMON);
        if let Some(cur) = annotation_list(v1, CURRENT_METRICS_ANNOTATION) {
            st["currentMetrics"] = cur.iter().map(|m| metric_to_v2(m, true)).collect();
        } else if let Some(cpu) = status["currentCPUUtilizationPercentage"].as_i64() {
            st["currentMetrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": cpu}}}]);
        }
        if let Some(conds) = annotation_list(v1, CONDITIONS_ANNOTATION) {
            st["conditions"] = Value::Array(conds);
        }
        out["status"] = st;
    }
    drop_round_trip(&mut out);
    out
}

/// Upstream's `Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler`.
fn v2_to_v1(v2: &Value) -> Value {
    let mut out = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": v2["metadata"].clone()});
    drop_round_trip(&mut out);
    let spec = &v2["spec"];
    let mut s1 = json!({});
    copy_fields(
        spec,
        &mut s1,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_utilization(m)) {
        s1["targetCPUUtilizationPercentage"] =
            cpu["resource"]["target"]["averageUtilization"].clone();
    }
    let other: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(|m| metric_to_v1(m, false))
        .collect();
    out["spec"] = s1;
    let status = &v2["status"];
    let current = status["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    if status.is_object() {
        let mut st = json!({});
        copy_fields(status, &mut st, STATUS_COMMON);
        if let Some(cpu) = current.iter().find(|m| {
            m["type"] == "Resource"
                && m["resource"]["name"] == "cpu"
                && !m["resource"]["current"]["averageUtilization"].is_null()
        }) {
            st["currentCPUUtilizationPercentage"] =
                cpu["resource"]["current"]["averageUtilization"].clone();
        }
        out["status"] = st;
    }
    let encode = |v: &Value| Value::String(v.to_string());
    if !other.is_empty() {
        annotations(&mut out).insert(METRICS_ANNOTATION.into(), encode(&json!(other)));
    }
    if !current.is_empty() {
        let cur: Vec<Value> = current.iter().map(|m| metric_to_v1(m, true)).collect();
        annotations(&mut out).insert(CURRENT_METRICS_ANNOTATION.into(), encode(&json!(cur)));
    }
    if !spec["behavior"].is_null() {
        annotations(&mut out).insert(BEHAVIOR_ANNOTATION.into(), encode(&spec["behavior"]));
    }
    if !conditions.is_empty() {
        annotations(&mut out).insert(CONDITIONS_ANNOTATION.into(), encode(&json!(conditions)));
    }
    out
}

impl Strategy for HpaV1Strategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<autoscaling::v1::HorizontalPodAutoscaler>(input)
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn default(&self, obj: &mut Value) {
        set_default(obj_mut(obj, "spec"), "minReplicas", json!(1));
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        validate_common(spec, &mut causes);
        if let Some(t) = spec["targetCPUUtilizationPercentage"].as_i64()
            && t < 1
        {
            causes.push(Cause::invalid(
                "spec.targetCPUUtilizationPercentage",
                &json!(t),
                "must be greater than 0",
            ));
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("HorizontalPodAutoscaler", path))
    }

    fn columns(&self) -> Vec<Column> {
        hpa_columns()
    }

    /// The row of the stored (v2) form, as upstream prints the internal object.
    fn cells(&self, obj: &Value) -> Vec<Value> {
        hpa_cells(&self.encode_stored(obj.clone()))
    }

    /// The stored v2 form, defaulted as upstream's storage decoding defaults it.
    fn encode_stored(&self, obj: Value) -> Value {
        let mut v2 = v1_to_v2(&obj);
        default_v2(&mut v2);
        v2
    }

    fn decode_stored(&self, obj: Value) -> Value {
        v2_to_v1(&obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn web() -> Value {
        let mut h = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 10, "targetCPUUtilizationPercentage": 50}});
        HpaV1Strategy.prepare_create(&mut h);
        HpaV1Strategy.default(&mut h);
        h
    }

    #[test]
    fn defaults_and_validation() {
        let h = web();
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert!(HpaV1Strategy.validate(&h, &CX).is_empty());
        let mut bad = h.clone();
        bad["spec"]["targetCPUUtilizationPercentage"] = json!(0);
        bad["spec"]["scaleTargetRef"]["name"] = json!("");
        let causes = HpaV1Strategy.validate(&bad, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.scaleTargetRef.name",
                "spec.targetCPUUtilizationPercentage"
            ]
        );
    }

    #[test]
    fn v1_round_trips_through_v2() {
        let mut h = web();
        h["status"] = json!({"currentReplicas": 2, "desiredReplicas": 3,
            "currentCPUUtilizationPercentage": 70, "lastScaleTime": "2024-01-01T00:00:00Z"});
        let stored = HpaV1Strategy.encode_stored(h.clone());
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(
            stored["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}])
        );
        assert_eq!(
            stored["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            70
        );
        let mut back = HpaV1Strategy.decode_stored(stored);
        // Upstream keeps every current metric (the raw values too) in an annotation, even
        // when the CPU one is all there is.
        let cur = back["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(CURRENT_METRICS_ANNOTATION)
            .unwrap();
        assert_eq!(
            cur,
            r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":70}}]"#
        );
        assert_eq!(back, h);
        assert_eq!(
            HpaV1Strategy
                .encode_stored(HpaV1Strategy.decode_stored(HpaV1Strategy.encode_stored(h.clone()))),
            HpaV1Strategy.encode_stored(h.clone())
        );
        assert_eq!(HpaV1Strategy.cells(&h)[2], "cpu: 70%/50%");
    }

    #[test]
    fn v2_only_fields_ride_in_annotations() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
            "status": {"currentReplicas": 1, "desiredReplicas": 1,
                "currentMetrics": [{"type": "Pods", "pods": {"metric": {"name": "rps"}, "current": {"averageValue": "4"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let v1 = HpaV1Strategy.decode_stored(v2.clone());
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(
            serde_json::from_str::<Value>(ann[METRICS_ANNOTATION].as_str().unwrap()).unwrap(),
            json!([{"type": "Pods", "pods": {"metricName": "rps", "targetAverageValue": "10"}}])
        );
        let again = v1_to_v2(&v1);
        assert!(again["metadata"].get("annotations").is_none());
        assert_eq!(again["spec"]["metrics"][0], v2["spec"]["metrics"][1]);
        assert_eq!(again["spec"]["metrics"][1], v2["spec"]["metrics"][0]);
        assert_eq!(again["spec"]["behavior"], v2["spec"]["behavior"]);
        assert_eq!(again["status"], v2["status"]);
    }

    #[test]
    fn cells_count() {
        assert_eq!(
            HpaV1Strategy.cells(&json!({})).len(),
            HpaV1Strategy.columns().len()
        );
    }
}
