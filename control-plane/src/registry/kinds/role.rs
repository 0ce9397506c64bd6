//! `rbac.authorization.k8s.io/v1 Role`: its strategy and resource entry. The rule checks and
//! the printer are shared with `ClusterRole`. Roles are stored now and enforced later.

use k8s_openapi::api::rbac;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::strategy::{
    Canonical, Column, NameRule, Strategy, ValidationContext, col, typed,
};
use super::super::validation::required_because;
use crate::apiserver::status::Cause;

/// The `roles` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        RoleStrategy,
    )
}

/// Upstream's `Role` strategy; roles have no printer, so the default table shows.
pub struct RoleStrategy;

impl Strategy for RoleStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::Role>(input)
    }

    /// `ValidateRBACName`.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_rules(obj, true, &mut causes);
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Role", path))
    }

    fn columns(&self) -> Vec<Column> {
        default_table_columns()
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        default_table_cells(o)
    }
}

/// `ValidatePolicyRule` over `rules`: every rule has verbs, and either resources (with API
/// groups) or, cluster-wide only, non-resource URLs.
pub(crate) fn validate_rules(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let nonempty = |v: &Value| v.as_array().is_some_and(|a| !a.is_empty());
    for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let path = format!("rules[{i}]");
        if !nonempty(&rule["verbs"]) {
            causes.push(required_because(
                format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        if nonempty(&rule["nonResourceURLs"]) {
            if namespaced {
                causes.push(Cause::invalid(
                    format!("{path}.nonResourceURLs"),
                    &rule["nonResourceURLs"],
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if ["apiGroups", "resources", "resourceNames"]
                .iter()
                .any(|f| nonempty(&rule[f]))
            {
                causes.push(Cause::invalid(
                    format!("{path}.nonResourceURLs"),
                    &rule["nonResourceURLs"],
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if !nonempty(&rule["apiGroups"]) {
            causes.push(required_because(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if !nonempty(&rule["resources"]) {
            causes.push(required_because(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// The columns of upstream's default table convertor (kinds without a printer).
pub(crate) fn default_table_columns() -> Vec<Column> {
    vec![col("Name", "string", 0), col("Created At", "date", 0)]
}

/// A default-table row: the name and the RFC 3339 creation time (Go's zero time if unset).
pub(crate) fn default_table_cells(o: &Value) -> Vec<Value> {
    let created = o["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or("0001-01-01T00:00:00Z");
    vec![
        json!(o["metadata"]["name"].as_str().unwrap_or_default()),
        json!(created),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::validation::name_error;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn role() -> Value {
        json!({"metadata": {"name": "pod-reader", "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]}]})
    }

    #[test]
    fn nothing_defaults_and_a_good_role_validates() {
        let mut r = role();
        RoleStrategy.default(&mut r);
        assert_eq!(r, role());
        assert!(RoleStrategy.validate(&r, &CX).is_empty());
    }

    #[test]
    fn names_are_path_segments() {
        assert!(name_error(RoleStrategy.name_rule(), "system:controller:x").is_none());
        assert!(name_error(RoleStrategy.name_rule(), "a/b").is_some());
    }

    #[test]
    fn rules_need_verbs_and_no_urls() {
        let r = json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, {"verbs": ["get"]}]});
        let causes = RoleStrategy.validate(&r, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rules[0].verbs",
                "rules[1].nonResourceURLs",
                "rules[2].apiGroups",
                "rules[2].resources"
            ]
        );
        assert_eq!(
            causes[0].message,
            "Required value: verbs must contain at least one value"
        );
    }

    #[test]
    fn default_table_row() {
        let c = RoleStrategy.cells(&role());
        assert_eq!(c.len(), RoleStrategy.columns().len());
        assert_eq!(c, [json!("pod-reader"), json!("2024-05-01T10:00:00Z")]);
        assert_eq!(RoleStrategy.columns()[1].name, "Created At");
    }
}
