//! `storage.k8s.io/v1 CSINode`: its strategy and resource entry.

use k8s_openapi::api::storage;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    DNS1123_SUBDOMAIN_MSG, is_dns1123_subdomain, qualified_name_causes,
};
use crate::apiserver::status::Cause;

/// The `csinodes` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "storage.k8s.io",
        "v1",
        "csinodes",
        "csinode",
        "CSINode",
        false,
        CsiNodeStrategy,
    )
}

/// Upstream's `csiNodeIDMaxLength` (the long form needs a feature gate we do not offer).
const NODE_ID_MAX: usize = 192;

/// Upstream's `CSINode` strategy and printer.
pub struct CsiNodeStrategy;

impl Strategy for CsiNodeStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<storage::v1::CSINode>(input)
    }

    /// `validateCSINodeDrivers`.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, d) in drivers(obj).iter().enumerate() {
            let path = format!("spec.drivers[{i}]");
            let name = s(&d["name"]);
            if name.is_empty() {
                causes.push(Cause::required(format!("{path}.name")));
            } else if !is_dns1123_subdomain(&name) {
                causes.push(Cause::invalid(
                    format!("{path}.name"),
                    &json!(name),
                    DNS1123_SUBDOMAIN_MSG,
                ));
            }
            let node_id = s(&d["nodeID"]);
            if node_id.is_empty() {
                causes.push(Cause::required(format!("{path}.nodeID")));
            }
            if node_id.len() > NODE_ID_MAX {
                causes.push(Cause::invalid(
                    format!("{path}.nodeID"),
                    &json!(node_id),
                    &format!("must be {NODE_ID_MAX} characters or less"),
                ));
            }
            if let Some(count) = d["allocatable"]["count"].as_i64()
                && count < 0
            {
                causes.push(Cause::invalid(
                    format!("{path}.allocatable.count"),
                    &json!(count),
                    "must be greater than or equal to 0",
                ));
            }
            if names.contains(&name) {
                causes.push(Cause::duplicate(format!("{path}.name"), &json!(name)));
            }
            names.push(name);
            let mut keys: Vec<String> = Vec::new();
            for key in d["topologyKeys"].as_array().into_iter().flatten() {
                let key = s(key);
                if key.is_empty() {
                    causes.push(Cause::required(path.clone()));
                }
                if keys.contains(&key) {
                    causes.push(Cause::duplicate(path.clone(), &json!(key)));
                }
                causes.extend(qualified_name_causes(&path, &key));
                keys.push(key);
            }
        }
        causes
    }

    /// `ValidateCSINodeUpdate`: a driver already listed may only change its allocatable count
    /// (`MutableCSINodeAllocatableCount` is on by default).
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let without_allocatable = |d: &Value| {
            let mut d = d.clone();
            if let Some(m) = d.as_object_mut() {
                m.remove("allocatable");
            }
            d
        };
        let mut causes = Vec::new();
        for od in drivers(old) {
            for nd in drivers(new) {
                if od["name"] == nd["name"] && without_allocatable(od) != without_allocatable(nd) {
                    causes.push(Cause::invalid(
                        "spec.drivers",
                        &without_allocatable(nd),
                        "field is immutable",
                    ));
                }
            }
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("CSINode", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Drivers", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    /// `printCSINode`.
    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(drivers(o).len()),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

fn drivers(o: &Value) -> &[Value] {
    o["spec"]["drivers"].as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn node() -> Value {
        json!({"metadata": {"name": "node-1"}, "spec": {"drivers": [
            {"name": "hostpath.csi.k8s.io", "nodeID": "node-1", "topologyKeys": ["topology.hostpath.csi/node"],
             "allocatable": {"count": 10}}]}})
    }

    #[test]
    fn nothing_to_default_and_a_good_node_validates() {
        let mut n = node();
        CsiNodeStrategy.default(&mut n);
        assert_eq!(n, node());
        assert!(CsiNodeStrategy.validate(&n, &CX).is_empty());
    }

    #[test]
    fn drivers_need_names_and_node_ids() {
        let n = json!({"metadata": {"name": "n"}, "spec": {"drivers": [
            {"name": "d.example", "nodeID": ""}, {"name": "d.example", "nodeID": "x"}]}});
        let fields: Vec<String> = CsiNodeStrategy
            .validate(&n, &CX)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.drivers[0].nodeID", "spec.drivers[1].name"]);
    }

    #[test]
    fn a_listed_driver_may_only_change_its_count() {
        let old = node();
        let mut count = old.clone();
        count["spec"]["drivers"][0]["allocatable"]["count"] = json!(5);
        assert!(CsiNodeStrategy.validate_update(&old, &count).is_empty());
        let mut id = old.clone();
        id["spec"]["drivers"][0]["nodeID"] = json!("other");
        let causes = CsiNodeStrategy.validate_update(&old, &id);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.drivers");
    }

    #[test]
    fn cells_count_drivers() {
        let c = CsiNodeStrategy.cells(&node());
        assert_eq!(c.len(), CsiNodeStrategy.columns().len());
        assert_eq!(c[0], "node-1");
        assert_eq!(c[1], 1);
        assert_eq!(CsiNodeStrategy.cells(&json!({}))[1], 0);
    }
}
