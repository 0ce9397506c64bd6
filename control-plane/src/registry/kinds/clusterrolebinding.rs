//! `rbac.authorization.k8s.io/v1 ClusterRoleBinding`: its strategy and resource entry. Stored
//! now, enforced later.

use k8s_openapi::api::rbac;
use serde_json::Value;

use super::super::Resource;
use super::super::strategy::{Canonical, Column, NameRule, Strategy, ValidationContext, typed};
use super::rolebinding::{
    binding_cells, binding_columns, default_binding, role_ref_immutable, validate_binding,
};
use crate::apiserver::status::Cause;

/// The `clusterrolebindings` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        ClusterRoleBindingStrategy,
    )
}

/// Upstream's `ClusterRoleBinding` strategy and printer.
pub struct ClusterRoleBindingStrategy;

impl Strategy for ClusterRoleBindingStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::ClusterRoleBinding>(input)
    }

    /// `ValidateRBACName`.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn default(&self, obj: &mut Value) {
        default_binding(obj);
    }

    /// `ValidateClusterRoleBinding`: only cluster roles, and service accounts need a namespace.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_binding(obj, false, &mut causes);
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        role_ref_immutable(old, new)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("ClusterRoleBinding", path))
    }

    fn columns(&self) -> Vec<Column> {
        binding_columns()
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        binding_cells(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::rolebinding::RBAC_GROUP;
    use serde_json::json;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn binding() -> Value {
        json!({"metadata": {"name": "cluster-admin"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin", "apiGroup": ""},
            "subjects": [{"kind": "Group", "name": "system:masters"}]})
    }

    #[test]
    fn defaults_and_validates() {
        let mut b = binding();
        ClusterRoleBindingStrategy.default(&mut b);
        assert_eq!(b["roleRef"]["apiGroup"], RBAC_GROUP);
        assert_eq!(b["subjects"][0]["apiGroup"], RBAC_GROUP);
        assert!(ClusterRoleBindingStrategy.validate(&b, &CX).is_empty());
    }

    #[test]
    fn only_cluster_roles_and_namespaced_service_accounts() {
        let mut b = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]});
        ClusterRoleBindingStrategy.default(&mut b);
        let causes = ClusterRoleBindingStrategy.validate(&b, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["roleRef.kind", "subjects[0].namespace"]);
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"Role\": supported values: \"ClusterRole\""
        );
    }

    #[test]
    fn role_ref_is_immutable() {
        let mut old = binding();
        ClusterRoleBindingStrategy.default(&mut old);
        let mut new = old.clone();
        new["roleRef"]["name"] = json!("view");
        assert_eq!(
            ClusterRoleBindingStrategy.validate_update(&old, &new)[0].field,
            "roleRef"
        );
    }

    #[test]
    fn cells_like_kubectl_wide() {
        let c = ClusterRoleBindingStrategy.cells(&binding());
        assert_eq!(c.len(), ClusterRoleBindingStrategy.columns().len());
        assert_eq!(c[1], "ClusterRole/cluster-admin");
        assert_eq!(c[4], "system:masters");
        assert_eq!(c[3], "");
    }
}
