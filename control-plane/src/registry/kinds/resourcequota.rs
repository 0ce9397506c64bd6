//! `v1 ResourceQuota`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::{Value, json};

use super::super::printers::{age, quantity_cell, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{clear_status, quantity};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `resourcequotas` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        ResourceQuotaStrategy,
    )
    .short_names(&["quota"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `ResourceQuota` strategy and printer.
pub struct ResourceQuotaStrategy;

/// Quota scopes upstream knows.
const SCOPES: &[&str] = &[
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
];

/// Quota resources counted in whole objects: their values must be integers.
fn is_object_count(name: &str) -> bool {
    name.starts_with("count/")
        || matches!(
            name,
            "pods"
                | "services"
                | "replicationcontrollers"
                | "resourcequotas"
                | "secrets"
                | "configmaps"
                | "persistentvolumeclaims"
                | "services.nodeports"
                | "services.loadbalancers"
        )
}

/// The quantities of a resource list under `path` (`spec.hard`): each parses, is not
/// negative, and object counts are whole.
fn validate_resource_list(list: &Value, path: &str, causes: &mut Vec<Cause>) {
    for (k, v) in list.as_object().into_iter().flatten() {
        let p = format!("{path}[{k}]");
        match quantity(v) {
            None => causes.push(Cause::invalid(
                p,
                v,
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )),
            Some(q) if q < 0.0 => causes.push(Cause::invalid(
                p,
                v,
                "must be greater than or equal to 0",
            )),
            Some(q) if is_object_count(k) && q.fract() != 0.0 => {
                causes.push(Cause::invalid(p, v, "must be an integer"));
            }
            Some(_) => {}
        }
    }
}

impl Strategy for ResourceQuotaStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::ResourceQuota>(input)
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        validate_resource_list(&spec["hard"], "spec.hard", &mut causes);
        for (i, scope) in spec["scopes"].as_array().into_iter().flatten().enumerate() {
            if !scope.as_str().is_some_and(|sc| SCOPES.contains(&sc)) {
                causes.push(Cause::not_supported(
                    format!("spec.scopes[{i}]"),
                    scope,
                    SCOPES,
                ));
            }
        }
        for (i, expr) in spec["scopeSelector"]["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let sn = &expr["scopeName"];
            if !sn.as_str().is_some_and(|sc| SCOPES.contains(&sc)) {
                causes.push(Cause::not_supported(
                    format!("spec.scopeSelector.matchExpressions[{i}].scopeName"),
                    sn,
                    SCOPES,
                ));
            }
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Age", "string", 0),
            col("Request", "string", 0),
            col("Limit", "string", 0),
        ]
    }

    /// `resource: used/hard` of each resource in `status.hard`, `limits.*` in the Limit column.
    fn cells(&self, o: &Value) -> Vec<Value> {
        let status = &o["status"];
        let mut names: Vec<&String> = status["hard"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        names.sort();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for name in names {
            let cell = format!(
                "{name}: {}/{}",
                quantity_cell(&status["used"][name.as_str()]),
                quantity_cell(&status["hard"][name.as_str()])
            );
            let mut pieces = name.split('.');
            if pieces.next() == Some("limits") && pieces.next().is_some() {
                limits.push(cell);
            } else {
                requests.push(cell);
            }
        }
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(requests.join(", ")),
            json!(limits.join(", ")),
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
    fn create_drops_status_and_validates_quantities() {
        let mut q = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "requests.cpu": "1"}},
            "status": {"hard": {"pods": "99"}}});
        ResourceQuotaStrategy.prepare_create(&mut q);
        ResourceQuotaStrategy.default(&mut q);
        assert!(q.get("status").is_none());
        assert!(ResourceQuotaStrategy.validate(&q, &CX).is_empty());
        q["spec"]["hard"] = json!({"pods": "1.5", "requests.memory": "-1Gi"});
        q["spec"]["scopes"] = json!(["Sometimes"]);
        let causes = ResourceQuotaStrategy.validate(&q, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.hard[pods]",
                "spec.hard[requests.memory]",
                "spec.scopes[0]"
            ]
        );
        assert!(causes[0].message.ends_with("must be an integer"));
    }

    #[test]
    fn spec_may_change() {
        let old = json!({"spec": {"hard": {"pods": "10"}}});
        let new = json!({"spec": {"hard": {"pods": "20"}}});
        assert!(ResourceQuotaStrategy.validate_update(&old, &new).is_empty());
    }

    #[test]
    fn cells_like_kubectl() {
        let q = json!({"metadata": {"name": "compute"}, "status": {
            "hard": {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "limits.memory": "2Gi", "pods": "10"},
            "used": {"requests.cpu": "500m", "pods": "3"}}});
        let c = ResourceQuotaStrategy.cells(&q);
        assert_eq!(c.len(), ResourceQuotaStrategy.columns().len());
        assert_eq!(
            c[2],
            "pods: 3/10, requests.cpu: 500m/1, requests.memory: 0/1Gi"
        );
        assert_eq!(c[3], "limits.cpu: 0/2, limits.memory: 0/2Gi");
    }
}
