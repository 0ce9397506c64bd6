//! `scheduling.k8s.io/v1 PriorityClass`: its strategy and resource entry.

use k8s_openapi::api::scheduling;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{required_because, set_default};
use crate::apiserver::status::Cause;

/// The `priorityclasses` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        PriorityClassStrategy,
    )
    .short_names(&["pc"])
}

/// Upstream's `HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// Upstream's `SystemCriticalPriority`.
pub const SYSTEM_CRITICAL_PRIORITY: i64 = 2 * HIGHEST_USER_DEFINABLE_PRIORITY;
/// Names with this prefix are reserved for [`SYSTEM_PRIORITY_CLASSES`].
pub const SYSTEM_PREFIX: &str = "system-";

/// The built-in classes (`name`, `value`, `description`); neither is a global default.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        SYSTEM_CRITICAL_PRIORITY + 1000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        SYSTEM_CRITICAL_PRIORITY,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

const PREEMPTION_POLICIES: [&str; 2] = ["PreemptLowerPriority", "Never"];

/// A built-in class as the API server would create it at start-up.
#[must_use]
pub fn system_priority_class(name: &str) -> Option<Value> {
    SYSTEM_PRIORITY_CLASSES
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(n, value, description)| {
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": n}, "value": value, "description": description})
        })
}

/// Upstream's `PriorityClass` strategy and printer.
pub struct PriorityClassStrategy;

impl Strategy for PriorityClassStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<scheduling::v1::PriorityClass>(input)
    }

    /// `SetDefaults_PriorityClass`.
    fn default(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
    }

    /// `ValidatePriorityClass`: `system-` names are the built-ins only, user values are capped.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let name = s(&obj["metadata"]["name"]);
        let value = obj["value"].as_i64().unwrap_or(0);
        let global = obj["globalDefault"].as_bool().unwrap_or(false);
        if name.starts_with(SYSTEM_PREFIX) {
            if let Err(e) = known_system_class(&name, value, global) {
                causes.push(Cause::forbidden(
                    "metadata.name",
                    &format!("priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {e}"),
                ));
            }
        } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
            causes.push(Cause::forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            ));
        }
        match obj["preemptionPolicy"].as_str() {
            Some("") => causes.push(required_because("preemptionPolicy", "")),
            Some(p) if !PREEMPTION_POLICIES.contains(&p) => causes.push(Cause::not_supported(
                "preemptionPolicy",
                &json!(p),
                &PREEMPTION_POLICIES,
            )),
            _ => {}
        }
        causes
    }

    /// `ValidatePriorityClassUpdate`: value and preemption policy are fixed.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        if old["value"] != new["value"] {
            causes.push(Cause::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if old["preemptionPolicy"] != new["preemptionPolicy"] {
            causes.push(Cause::invalid(
                "preemptionPolicy",
                &new["preemptionPolicy"],
                "field is immutable",
            ));
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("PriorityClass", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Value", "integer", 0),
            col("Global-Default", "boolean", 0),
            col("Age", "string", 0),
            col("PreemptionPolicy", "string", 0),
        ]
    }

    /// `printPriorityClass` (wide, as the server prints).
    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(o["value"].as_i64().unwrap_or(0)),
            json!(o["globalDefault"].as_bool().unwrap_or(false)),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(s(&o["preemptionPolicy"])),
        ]
    }
}

/// Upstream's `IsKnownSystemPriorityClass`.
fn known_system_class(name: &str, value: i64, global: bool) -> Result<(), String> {
    let Some((n, v, _)) = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if *v != value {
        return Err(format!("value of {n} PriorityClass must be {v}"));
    }
    if global {
        return Err(format!("globalDefault of {n} PriorityClass must be false"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    #[test]
    fn preemption_policy_defaults_and_builtins_validate() {
        for (name, ..) in SYSTEM_PRIORITY_CLASSES {
            let mut pc = system_priority_class(name).unwrap();
            PriorityClassStrategy.default(&mut pc);
            assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
            assert!(
                PriorityClassStrategy.validate(&pc, &CX).is_empty(),
                "{name}"
            );
        }
        assert_eq!(
            system_priority_class("system-node-critical").unwrap()["value"],
            2_000_001_000
        );
    }

    #[test]
    fn system_names_are_reserved_and_user_values_capped() {
        let pc = json!({"metadata": {"name": "system-mine"}, "value": 10});
        let causes = PriorityClassStrategy.validate(&pc, &CX);
        assert_eq!(causes[0].field, "metadata.name");
        assert_eq!(
            causes[0].message,
            "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
        );
        let fake = json!({"metadata": {"name": "system-node-critical"}, "value": 5});
        assert!(
            PriorityClassStrategy.validate(&fake, &CX)[0]
                .message
                .ends_with("value of system-node-critical PriorityClass must be 2000001000")
        );
        let high = json!({"metadata": {"name": "high"}, "value": 2_000_000_000, "preemptionPolicy": "Sometimes"});
        let fields: Vec<String> = PriorityClassStrategy
            .validate(&high, &CX)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["value", "preemptionPolicy"]);
    }

    #[test]
    fn value_and_policy_are_immutable() {
        let mut old = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": false});
        PriorityClassStrategy.default(&mut old);
        let mut new = old.clone();
        new["value"] = json!(2000);
        new["preemptionPolicy"] = json!("Never");
        new["description"] = json!("now described");
        let causes = PriorityClassStrategy.validate_update(&old, &new);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["value", "preemptionPolicy"]);
        assert_eq!(
            causes[0].message,
            "Forbidden: may not be changed in an update."
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let mut pc = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": true});
        PriorityClassStrategy.default(&mut pc);
        let c = PriorityClassStrategy.cells(&pc);
        assert_eq!(c.len(), PriorityClassStrategy.columns().len());
        assert_eq!(
            (&c[0], &c[1], &c[2], &c[4]),
            (
                &json!("high"),
                &json!(1000),
                &json!(true),
                &json!("PreemptLowerPriority")
            )
        );
    }
}
