//! `apiregistration.k8s.io/v1 APIService`: its strategy and resource entry.

use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1;
use serde_json::{Value, json};

use super::super::printers::{age, s};
use super::super::strategy::{
    Canonical, Column, NameRule, Strategy, ValidationContext, col, typed,
};
use super::super::validation::{
    DNS1035_LABEL_MSG, DNS1123_SUBDOMAIN_MSG, is_dns1035_label, is_dns1123_subdomain,
    path_segment_problems, required_because, set_default,
};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `apiservices` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "apiservice",
        "APIService",
        false,
        ApiServiceStrategy,
    )
    .subresources(&[Subresource::Status])
}

/// Upstream's `APIService` strategy and its table convertor.
pub struct ApiServiceStrategy;

impl Strategy for ApiServiceStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::APIService>(input)
    }

    /// The name has its own rule (`<version>.<group>`), checked in [`Strategy::validate`] after
    /// the path-segment basics.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn has_status(&self) -> bool {
        true
    }

    /// Status is the aggregator's; a local API service (no `spec.service`) is available at once.
    fn prepare_create(&self, obj: &mut Value) {
        let status = if obj["spec"]["service"].is_null() {
            json!({"conditions": [{"type": "Available", "status": "True",
                "lastTransitionTime": crate::apiserver::now(), "reason": "Local",
                "message": "Local APIServices are always available"}]})
        } else {
            json!({})
        };
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), status);
        }
    }

    /// `SetDefaults_ServiceReference`: port 443.
    fn default(&self, obj: &mut Value) {
        if let Some(svc) = obj
            .get_mut("spec")
            .and_then(|s| s.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            set_default(svc, "port", json!(443));
        }
    }

    /// `ValidateAPIService`.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        let (group, version) = (s(&spec["group"]), s(&spec["version"]));
        let name = s(&obj["metadata"]["name"]);
        let required = format!("{version}.{group}");
        if path_segment_problems(&name).is_empty() && name != required {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                &format!("must be `spec.version+\".\"+spec.group`: \"{required}\""),
            ));
        }
        if group.is_empty() && version != "v1" {
            causes.push(required_because(
                "spec.group",
                "only v1 may have an empty group and it better be legacy kube",
            ));
        }
        if !group.is_empty() && !is_dns1123_subdomain(&group) {
            causes.push(Cause::invalid(
                "spec.group",
                &json!(group),
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
        if !is_dns1035_label(&version) {
            causes.push(Cause::invalid(
                "spec.version",
                &json!(version),
                DNS1035_LABEL_MSG,
            ));
        }
        let gpm = spec["groupPriorityMinimum"].as_i64().unwrap_or(0);
        if !(1..=20000).contains(&gpm) {
            causes.push(Cause::invalid(
                "spec.groupPriorityMinimum",
                &json!(gpm),
                "must be positive and less than 20000",
            ));
        }
        let vp = spec["versionPriority"].as_i64().unwrap_or(0);
        if !(1..=1000).contains(&vp) {
            causes.push(Cause::invalid(
                "spec.versionPriority",
                &json!(vp),
                "must be positive and less than 1000",
            ));
        }
        let ca_len = ca_bundle_len(&spec["caBundle"]);
        let insecure = spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false);
        let service = &spec["service"];
        if service.is_null() {
            if ca_len != 0 {
                causes.push(Cause::invalid(
                    "spec.caBundle",
                    &json!(format!("{ca_len} bytes")),
                    "local APIServices may not have a caBundle",
                ));
            }
            if insecure {
                causes.push(Cause::invalid(
                    "spec.insecureSkipTLSVerify",
                    &json!(true),
                    "local APIServices may not have insecureSkipTLSVerify",
                ));
            }
            return causes;
        }
        for field in ["namespace", "name"] {
            if s(&service[field]).is_empty() {
                causes.push(Cause::required(format!("spec.service.{field}")));
            }
        }
        let port = service["port"].as_i64().unwrap_or(443);
        if !(1..=65535).contains(&port) {
            causes.push(Cause::invalid(
                "spec.service.port",
                &json!(port),
                "port is not valid: must be between 1 and 65535, inclusive",
            ));
        }
        if insecure && ca_len > 0 {
            causes.push(Cause::invalid(
                "spec.insecureSkipTLSVerify",
                &json!(true),
                "may not be true if caBundle is present",
            ));
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("APIService", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Service", "string", 0),
            col("Available", "string", 0),
            col("Age", "string", 0),
        ]
    }

    /// The aggregator's row: `Local` or `namespace/name`, and the `Available` condition.
    fn cells(&self, o: &Value) -> Vec<Value> {
        let svc = &o["spec"]["service"];
        let service = if svc.is_null() {
            "Local".to_string()
        } else {
            format!("{}/{}", s(&svc["namespace"]), s(&svc["name"]))
        };
        let available = o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Available")
            .map_or_else(
                || "Unknown".to_string(),
                |c| {
                    let (status, reason) = (s(&c["status"]), s(&c["reason"]));
                    if status == "True" || reason.is_empty() {
                        status
                    } else {
                        format!("{status} ({reason})")
                    }
                },
            );
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(service),
            json!(available),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

/// Decoded length of the base64 `caBundle`.
fn ca_bundle_len(v: &Value) -> usize {
    let b = v.as_str().unwrap_or_default().trim_end_matches('=');
    b.len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn metrics() -> Value {
        json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"group": "metrics.k8s.io",
            "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
            "insecureSkipTLSVerify": true, "service": {"namespace": "kube-system", "name": "metrics-server"}}})
    }

    #[test]
    fn service_port_defaults_and_local_services_are_available() {
        let mut a = metrics();
        ApiServiceStrategy.prepare_create(&mut a);
        ApiServiceStrategy.default(&mut a);
        assert_eq!(a["spec"]["service"]["port"], 443);
        assert_eq!(a["status"], json!({}));
        assert!(ApiServiceStrategy.validate(&a, &CX).is_empty());
        let mut local = json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1",
            "groupPriorityMinimum": 17800, "versionPriority": 15}});
        ApiServiceStrategy.prepare_create(&mut local);
        ApiServiceStrategy.default(&mut local);
        assert_eq!(local["status"]["conditions"][0]["reason"], "Local");
        assert!(ApiServiceStrategy.validate(&local, &CX).is_empty());
    }

    #[test]
    fn name_must_be_version_dot_group() {
        let mut a = metrics();
        a["metadata"]["name"] = json!("metrics");
        a["spec"]["groupPriorityMinimum"] = json!(0);
        let causes = ApiServiceStrategy.validate(&a, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "spec.groupPriorityMinimum"]);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"metrics\": must be `spec.version+\".\"+spec.group`: \"v1beta1.metrics.k8s.io\""
        );
    }

    #[test]
    fn cells_show_service_and_availability() {
        let mut a = metrics();
        a["status"] = json!({"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]});
        let c = ApiServiceStrategy.cells(&a);
        assert_eq!(c.len(), ApiServiceStrategy.columns().len());
        assert_eq!(c[1], "kube-system/metrics-server");
        assert_eq!(c[2], "False (MissingEndpoints)");
        let bare = ApiServiceStrategy.cells(&json!({}));
        assert_eq!((&bare[1], &bare[2]), (&json!("Local"), &json!("Unknown")));
    }
}
