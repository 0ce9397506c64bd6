//! `v1 LimitRange`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::{Map, Value, json};

use super::super::Resource;
use super::super::printers::s;
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::quantity;
use crate::apiserver::status::Cause;

/// The `limitranges` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "limitranges",
        "limitrange",
        "LimitRange",
        true,
        LimitRangeStrategy,
    )
    .short_names(&["limits"])
}

/// Upstream's `LimitRange` strategy and printer.
pub struct LimitRangeStrategy;

/// Upstream's `SetDefaults_LimitRangeItem`: a Container item's default limit falls back to
/// its max, its default request to the default limit, then to its min.
fn default_item(item: &mut Map<String, Value>) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let get = |item: &Map<String, Value>, k: &str| {
        item.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut default = get(item, "default");
    for (k, v) in get(item, "max") {
        default.entry(k).or_insert(v);
    }
    let mut request = get(item, "defaultRequest");
    for (k, v) in default.iter().chain(get(item, "min").iter()) {
        request.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, m) in [("default", default), ("defaultRequest", request)] {
        if !m.is_empty() {
            item.insert(k.into(), Value::Object(m));
        }
    }
}

impl Strategy for LimitRangeStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::LimitRange>(input)
    }

    fn default(&self, obj: &mut Value) {
        for item in obj["spec"]["limits"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            default_item(item);
        }
    }

    /// Upstream's `ValidateLimitRange`: a type per item, no defaults for Pods, and per resource
    /// `min <= defaultRequest <= default <= max`.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        for (i, item) in obj["spec"]["limits"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = format!("spec.limits[{i}]");
            let ty = item["type"].as_str().unwrap_or_default();
            if ty.is_empty() {
                causes.push(Cause::required(format!("{p}.type")));
            }
            if ty == "Pod" {
                for f in ["default", "defaultRequest"] {
                    if item[f].as_object().is_some_and(|m| !m.is_empty()) {
                        causes.push(Cause::forbidden(
                            format!("{p}.{f}"),
                            "may not be specified when `type` is 'Pod'",
                        ));
                    }
                }
            }
            let mut keys: Vec<&String> = [
                "max",
                "min",
                "default",
                "defaultRequest",
                "maxLimitRequestRatio",
            ]
            .iter()
            .flat_map(|f| item[*f].as_object().into_iter().flatten().map(|(k, _)| k))
            .collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let q = |f: &str| {
                    let v = &item[f][k.as_str()];
                    quantity(v).map(|x| (x, s(v)))
                };
                let (min, max, def, req) = (q("min"), q("max"), q("default"), q("defaultRequest"));
                let mut check = |lo: &Option<(f64, String)>,
                                 hi: &Option<(f64, String)>,
                                 path: String,
                                 shown: &Value,
                                 msg: &str| {
                    if let (Some((l, ls)), Some((h, hs))) = (lo, hi)
                        && l > h
                    {
                        let msg = msg.replacen("{lo}", ls, 1).replacen("{hi}", hs, 1);
                        causes.push(Cause::invalid(path, shown, &msg));
                    }
                };
                check(
                    &min,
                    &max,
                    format!("{p}[{k}]"),
                    &item["min"][k.as_str()],
                    "min value {lo} is greater than max value {hi}",
                );
                check(
                    &min,
                    &req,
                    format!("{p}.defaultRequest[{k}]"),
                    &item["defaultRequest"][k.as_str()],
                    "min value {lo} is greater than default request value {hi}",
                );
                check(
                    &req,
                    &max,
                    format!("{p}.defaultRequest[{k}]"),
                    &item["defaultRequest"][k.as_str()],
                    "default request value {lo} is greater than max value {hi}",
                );
                check(
                    &req,
                    &def,
                    format!("{p}.defaultRequest[{k}]"),
                    &item["defaultRequest"][k.as_str()],
                    "default request value {lo} is greater than default limit value {hi}",
                );
                check(
                    &min,
                    &def,
                    format!("{p}.default[{k}]"),
                    &item["min"][k.as_str()],
                    "min value {lo} is greater than default value {hi}",
                );
                check(
                    &def,
                    &max,
                    format!("{p}.default[{k}]"),
                    &item["max"][k.as_str()],
                    "default value {lo} is greater than max value {hi}",
                );
            }
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![col("Name", "string", 0), col("Created At", "date", 0)]
    }

    /// The creation timestamp itself, not an age (upstream prints `metav1.Time`).
    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(s(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    #[test]
    fn container_defaults_fall_back_to_max_and_min() {
        let mut lr = json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "100m", "ephemeral-storage": "1Gi"}},
            {"type": "Pod", "max": {"cpu": "4"}}]}});
        LimitRangeStrategy.default(&mut lr);
        let c = &lr["spec"]["limits"][0];
        assert_eq!(c["default"], json!({"cpu": "2", "memory": "1Gi"}));
        assert_eq!(
            c["defaultRequest"],
            json!({"cpu": "2", "memory": "1Gi", "ephemeral-storage": "1Gi"})
        );
        assert!(lr["spec"]["limits"][1].get("default").is_none());
        assert!(LimitRangeStrategy.validate(&lr, &CX).is_empty());
    }

    #[test]
    fn min_above_max_is_invalid() {
        let lr = json!({"spec": {"limits": [{"type": "Pod", "min": {"cpu": "2"}, "max": {"cpu": "500m"},
            "default": {"cpu": "1"}}]}});
        let causes = LimitRangeStrategy.validate(&lr, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.limits[0].default",
                "spec.limits[0][cpu]",
                "spec.limits[0].default[cpu]",
                "spec.limits[0].default[cpu]"
            ]
        );
        assert_eq!(
            causes[1].message,
            "Invalid value: \"2\": min value 2 is greater than max value 500m"
        );
    }

    #[test]
    fn limits_may_change() {
        let old = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}});
        let new = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}}]}});
        assert!(LimitRangeStrategy.validate_update(&old, &new).is_empty());
    }

    #[test]
    fn cells_like_kubectl() {
        let lr = json!({"metadata": {"name": "l", "creationTimestamp": "2024-05-01T10:00:00Z"}});
        let c = LimitRangeStrategy.cells(&lr);
        assert_eq!(c.len(), LimitRangeStrategy.columns().len());
        assert_eq!(c, [json!("l"), json!("2024-05-01T10:00:00Z")]);
    }
}
