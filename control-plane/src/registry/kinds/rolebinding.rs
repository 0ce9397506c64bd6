//! `rbac.authorization.k8s.io/v1 RoleBinding`: its strategy and resource entry. The binding
//! rules and the printer are shared with `ClusterRoleBinding`. Stored now, enforced later.

use k8s_openapi::api::rbac;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{
    Canonical, Column, NameRule, Strategy, ValidationContext, col, typed,
};
use super::super::validation::{
    DNS1123_SUBDOMAIN_MSG, is_dns1123_subdomain, obj_mut, path_segment_problems, set_default,
};
use crate::apiserver::status::Cause;

/// The `rolebindings` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        RoleBindingStrategy,
    )
}

/// The RBAC API group, the default `apiGroup` of role refs and user/group subjects.
pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Upstream's `RoleBinding` strategy and printer.
pub struct RoleBindingStrategy;

impl Strategy for RoleBindingStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<rbac::v1::RoleBinding>(input)
    }

    /// `ValidateRBACName`.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn default(&self, obj: &mut Value) {
        default_binding(obj);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_binding(obj, true, &mut causes);
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        role_ref_immutable(old, new)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("RoleBinding", path))
    }

    fn columns(&self) -> Vec<Column> {
        binding_columns()
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        binding_cells(o)
    }
}

/// `SetDefaults_RoleBinding`/`ClusterRoleBinding` and `SetDefaults_Subject`.
pub(crate) fn default_binding(obj: &mut Value) {
    set_default(obj_mut(obj, "roleRef"), "apiGroup", json!(RBAC_GROUP));
    if let Some(r) = obj["roleRef"].as_object_mut()
        && r.get("apiGroup").and_then(Value::as_str) == Some("")
    {
        r.insert("apiGroup".into(), json!(RBAC_GROUP));
    }
    for subject in obj
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let kind = subject["kind"].as_str().unwrap_or_default().to_string();
        if let Some(m) = subject.as_object_mut()
            && m.get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            && (kind == "User" || kind == "Group")
        {
            m.insert("apiGroup".into(), json!(RBAC_GROUP));
        }
    }
}

/// `ValidateRoleBinding` (`namespaced`) and `ValidateClusterRoleBinding`.
pub(crate) fn validate_binding(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let role_ref = &obj["roleRef"];
    let group = s(&role_ref["apiGroup"]);
    if group != RBAC_GROUP {
        causes.push(Cause::not_supported(
            "roleRef.apiGroup",
            &json!(group),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = s(&role_ref["kind"]);
    if !kinds.contains(&kind.as_str()) {
        causes.push(Cause::not_supported("roleRef.kind", &json!(kind), kinds));
    }
    let name = s(&role_ref["name"]);
    if name.is_empty() {
        causes.push(Cause::required("roleRef.name"));
    }
    for msg in path_segment_problems(&name) {
        causes.push(Cause::invalid("roleRef.name", &json!(name), &msg));
    }
    for (i, subject) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        validate_subject(subject, namespaced, &format!("subjects[{i}]"), causes);
    }
}

/// `ValidateRoleBindingSubject`.
fn validate_subject(subject: &Value, namespaced: bool, path: &str, causes: &mut Vec<Cause>) {
    let name = s(&subject["name"]);
    if name.is_empty() {
        causes.push(Cause::required(format!("{path}.name")));
    }
    let group = s(&subject["apiGroup"]);
    match subject["kind"].as_str().unwrap_or_default() {
        "ServiceAccount" => {
            if !name.is_empty() && !is_dns1123_subdomain(&name) {
                causes.push(Cause::invalid(
                    format!("{path}.name"),
                    &json!(name),
                    DNS1123_SUBDOMAIN_MSG,
                ));
            }
            if !group.is_empty() {
                causes.push(Cause::not_supported(
                    format!("{path}.apiGroup"),
                    &json!(group),
                    &[""],
                ));
            }
            if !namespaced && s(&subject["namespace"]).is_empty() {
                causes.push(Cause::required(format!("{path}.namespace")));
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                causes.push(Cause::not_supported(
                    format!("{path}.apiGroup"),
                    &json!(group),
                    &[RBAC_GROUP],
                ));
            }
        }
        other => causes.push(Cause::not_supported(
            format!("{path}.kind"),
            &json!(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// `ValidateRoleBindingUpdate`: a binding may not be repointed at another role.
pub(crate) fn role_ref_immutable(old: &Value, new: &Value) -> Vec<Cause> {
    if old["roleRef"] == new["roleRef"] {
        Vec::new()
    } else {
        vec![Cause::invalid(
            "roleRef",
            &new["roleRef"],
            "cannot change roleRef",
        )]
    }
}

/// `printRoleBinding`/`printClusterRoleBinding` columns.
pub(crate) fn binding_columns() -> Vec<Column> {
    vec![
        col("Name", "string", 0),
        col("Role", "string", 0),
        col("Age", "string", 0),
        col("Users", "string", 1),
        col("Groups", "string", 1),
        col("ServiceAccounts", "string", 1),
    ]
}

/// A binding row: `Kind/name` of the role, then the subjects by kind (`SubjectsStrings`).
pub(crate) fn binding_cells(o: &Value) -> Vec<Value> {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for subject in o["subjects"].as_array().into_iter().flatten() {
        let name = s(&subject["name"]);
        match subject["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => sas.push(format!("{}/{name}", s(&subject["namespace"]))),
            "User" => users.push(name),
            "Group" => groups.push(name),
            _ => {}
        }
    }
    vec![
        json!(s(&o["metadata"]["name"])),
        json!(format!(
            "{}/{}",
            s(&o["roleRef"]["kind"]),
            s(&o["roleRef"]["name"])
        )),
        json!(age(&o["metadata"]["creationTimestamp"])),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn binding() -> Value {
        json!({"metadata": {"name": "read-pods", "namespace": "default"},
            "roleRef": {"kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]})
    }

    #[test]
    fn api_groups_default_by_subject_kind() {
        let mut b = binding();
        RoleBindingStrategy.default(&mut b);
        assert_eq!(b["roleRef"]["apiGroup"], RBAC_GROUP);
        assert_eq!(b["subjects"][0]["apiGroup"], RBAC_GROUP);
        assert_eq!(b["subjects"][1]["apiGroup"], RBAC_GROUP);
        assert!(b["subjects"][2].get("apiGroup").is_none());
        assert!(RoleBindingStrategy.validate(&b, &CX).is_empty());
    }

    #[test]
    fn role_ref_and_subjects_are_checked() {
        let mut b = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Thing", "name": ""},
            "subjects": [{"kind": "Robot", "name": "r"}, {"kind": "ServiceAccount", "name": "sa", "apiGroup": "x"}]});
        RoleBindingStrategy.default(&mut b);
        let causes = RoleBindingStrategy.validate(&b, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "roleRef.kind",
                "roleRef.name",
                "subjects[0].kind",
                "subjects[1].apiGroup"
            ]
        );
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"Thing\": supported values: \"Role\", \"ClusterRole\""
        );
    }

    #[test]
    fn role_ref_is_immutable() {
        let mut old = binding();
        RoleBindingStrategy.default(&mut old);
        let mut new = old.clone();
        new["roleRef"]["name"] = json!("admin");
        let causes = RoleBindingStrategy.validate_update(&old, &new);
        assert_eq!(causes[0].field, "roleRef");
        assert!(causes[0].message.ends_with("cannot change roleRef"));
        let mut more = old.clone();
        more["subjects"] = json!([]);
        assert!(RoleBindingStrategy.validate_update(&old, &more).is_empty());
    }

    #[test]
    fn cells_like_kubectl_wide() {
        let c = RoleBindingStrategy.cells(&binding());
        assert_eq!(c.len(), RoleBindingStrategy.columns().len());
        assert_eq!(c[1], "Role/pod-reader");
        assert_eq!(
            &c[3..],
            &[json!("jane"), json!("devs"), json!("ci/builder")]
        );
    }
}
