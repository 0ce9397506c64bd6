//! `apps/v1 ControllerRevision`: its strategy and resource entry.

use k8s_openapi::api::apps;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, controller_name, n, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{immutable, non_negative};
use crate::apiserver::status::Cause;

/// The `controllerrevisions` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        ControllerRevisionStrategy,
    )
}

/// Upstream's `ControllerRevision` strategy and printer.
pub struct ControllerRevisionStrategy;

impl Strategy for ControllerRevisionStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<apps::v1::ControllerRevision>(input)
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        non_negative(&obj["revision"], "revision", &mut causes);
        causes
    }

    /// The recorded state never changes; only the revision number may be bumped.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        immutable(&old["data"], &new["data"], "data", &mut causes);
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Controller", "string", 0),
            col("Revision", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(controller_name(o)),
            json!(n(&o["revision"])),
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

    fn revision() -> Value {
        json!({"metadata": {"name": "web-7b9f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]},
            "data": {"spec": {"template": {}}}, "revision": 2})
    }

    #[test]
    fn revision_is_not_negative() {
        assert!(
            ControllerRevisionStrategy
                .validate(&revision(), &CX)
                .is_empty()
        );
        let mut bad = revision();
        bad["revision"] = json!(-1);
        let causes = ControllerRevisionStrategy.validate(&bad, &CX);
        assert_eq!(causes[0].field, "revision");
    }

    #[test]
    fn data_is_immutable() {
        let old = revision();
        let mut bumped = old.clone();
        bumped["revision"] = json!(3);
        assert!(
            ControllerRevisionStrategy
                .validate_update(&old, &bumped)
                .is_empty()
        );
        let mut changed = old.clone();
        changed["data"] = json!({"spec": {}});
        let causes = ControllerRevisionStrategy.validate_update(&old, &changed);
        assert_eq!(causes[0].field, "data");
        assert!(causes[0].message.ends_with("field is immutable"));
    }

    #[test]
    fn cells_like_kubectl() {
        let c = ControllerRevisionStrategy.cells(&revision());
        assert_eq!(c.len(), ControllerRevisionStrategy.columns().len());
        assert_eq!(c[1], "statefulset.apps/web");
        assert_eq!(c[2], 2);
        let mut core = revision();
        core["metadata"]["ownerReferences"][0]["apiVersion"] = json!("v1");
        core["metadata"]["ownerReferences"][0]["kind"] = json!("Pod");
        assert_eq!(ControllerRevisionStrategy.cells(&core)[1], "pod/web");
        assert_eq!(ControllerRevisionStrategy.cells(&json!({}))[1], "<none>");
    }
}
