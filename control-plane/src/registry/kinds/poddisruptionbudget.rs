//! `policy/v1 PodDisruptionBudget`: its strategy and resource entry.

use k8s_openapi::api::policy;
use serde_json::{Value, json};

use super::super::printers::{age, n, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{clear_status, int_or_percent};
use super::super::{Resource, Subresource};
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::status::Cause;

/// The `poddisruptionbudgets` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        PodDisruptionBudgetStrategy,
    )
    .short_names(&["pdb"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `PodDisruptionBudget` strategy and printer.
pub struct PodDisruptionBudgetStrategy;

impl Strategy for PodDisruptionBudgetStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<policy::v1::PodDisruptionBudget>(input)
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

    /// Upstream's `ValidatePodDisruptionBudgetSpec`: `minAvailable` or `maxUnavailable`, not
    /// both, each a count or a percentage; a valid selector (empty selects every pod).
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
            causes.push(Cause::invalid(
                "spec",
                spec,
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        for f in ["minAvailable", "maxUnavailable"] {
            int_or_percent(&spec[f], &format!("spec.{f}"), &mut causes);
        }
        if let Some(sel) = spec.get("selector").filter(|v| !v.is_null())
            && let Err(e) = LabelSelector::from_json(sel)
        {
            causes.push(Cause::invalid("spec.selector", sel, &e));
        }
        if let Some(p) = spec["unhealthyPodEvictionPolicy"].as_str()
            && !["AlwaysAllow", "IfHealthyBudget"].contains(&p)
        {
            causes.push(Cause::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                &json!(p),
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Min Available", "string", 0),
            col("Max Unavailable", "string", 0),
            col("Allowed Disruptions", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let or_na = |v: &Value| if v.is_null() { "N/A".to_string() } else { s(v) };
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(or_na(&o["spec"]["minAvailable"])),
            json!(or_na(&o["spec"]["maxUnavailable"])),
            json!(n(&o["status"]["disruptionsAllowed"])),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn budget() -> Value {
        let mut p = json!({"metadata": {"name": "zk"}, "spec": {"minAvailable": 2,
            "selector": {"matchLabels": {"app": "zk"}}}, "status": {"disruptionsAllowed": 5}});
        PodDisruptionBudgetStrategy.prepare_create(&mut p);
        PodDisruptionBudgetStrategy.default(&mut p);
        p
    }

    #[test]
    fn create_drops_status() {
        let p = budget();
        assert!(p.get("status").is_none());
        assert!(PodDisruptionBudgetStrategy.validate(&p, &CX).is_empty());
    }

    #[test]
    fn min_available_xor_max_unavailable() {
        let mut p = budget();
        p["spec"]["maxUnavailable"] = json!("150%");
        let causes = PodDisruptionBudgetStrategy.validate(&p, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec", "spec.maxUnavailable"]);
        assert!(
            causes[0]
                .message
                .ends_with("minAvailable and maxUnavailable cannot be both set")
        );
        assert!(causes[1].message.ends_with("must not be greater than 100%"));
    }

    #[test]
    fn spec_may_change() {
        let old = budget();
        let mut new = old.clone();
        new["spec"]["minAvailable"] = json!("50%");
        assert!(
            PodDisruptionBudgetStrategy
                .validate_update(&old, &new)
                .is_empty()
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let mut p = budget();
        p["status"] = json!({"disruptionsAllowed": 1});
        let c = PodDisruptionBudgetStrategy.cells(&p);
        assert_eq!(c.len(), PodDisruptionBudgetStrategy.columns().len());
        assert_eq!(c[1..4], [json!("2"), json!("N/A"), json!(1)]);
    }
}
