//! `rbac.authorization.k8s.io/v1 ClusterRole`: its strategy and resource entry. Stored now,
//! enforced later.

use k8s_openapi::api::rbac;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Column, NameRule, Strategy, ValidationContext, typed};
use super::super::validation::required_because;
use super::role::{default_table_cells, default_table_columns, validate_rules};
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::status::Cause;

/// The `clusterroles` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        ClusterRoleStrategy,
    )
}

/// Upstream's `ClusterRole` strategy; no printer, so the default table shows.
pub struct ClusterRoleStrategy;

impl Strategy for ClusterRoleStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::ClusterRole>(input)
    }

    /// `ValidateRBACName`.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    /// `ValidateClusterRole`: the rules, and an aggregation rule needs selectors.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_rules(obj, false, &mut causes);
        let agg = &obj["aggregationRule"];
        if !agg.is_null() {
            let selectors = agg["clusterRoleSelectors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if selectors.is_empty() {
                causes.push(required_because(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            for (i, sel) in selectors.iter().enumerate() {
                if let Err(e) = LabelSelector::from_json(sel) {
                    causes.push(Cause::invalid(
                        format!("aggregationRule.clusterRoleSelectors[{i}]"),
                        sel,
                        &e,
                    ));
                }
            }
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("ClusterRole", path))
    }

    fn columns(&self) -> Vec<Column> {
        default_table_columns()
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        default_table_cells(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    #[test]
    fn cluster_rules_may_name_urls() {
        let mut r = json!({"metadata": {"name": "system:discovery"},
            "rules": [{"nonResourceURLs": ["/api", "/healthz"], "verbs": ["get"]}]});
        ClusterRoleStrategy.default(&mut r);
        assert!(ClusterRoleStrategy.validate(&r, &CX).is_empty());
        assert_eq!(ClusterRoleStrategy.name_rule(), NameRule::PathSegment);
    }

    #[test]
    fn aggregation_needs_selectors_and_rules_need_verbs() {
        let r = json!({"metadata": {"name": "admin"}, "aggregationRule": {"clusterRoleSelectors": []},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": []}]});
        let fields: Vec<String> = ClusterRoleStrategy
            .validate(&r, &CX)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            ["rules[0].verbs", "aggregationRule.clusterRoleSelectors"]
        );
    }

    #[test]
    fn default_table_row() {
        let r = json!({"metadata": {"name": "cluster-admin", "creationTimestamp": "2024-05-01T10:00:00Z"}});
        let c = ClusterRoleStrategy.cells(&r);
        assert_eq!(c.len(), ClusterRoleStrategy.columns().len());
        assert_eq!(c[0], "cluster-admin");
        assert_eq!(c[1], "2024-05-01T10:00:00Z");
    }
}
