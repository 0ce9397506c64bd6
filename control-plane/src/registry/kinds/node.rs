//! `v1 Node`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::printers::{age, none_if_empty, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};
use super::super::validation::{obj_mut, set_default};
use super::super::{Resource, Subresource};

/// The `nodes` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new("", "v1", "nodes", "node", "Node", false, NodeStrategy)
        .short_names(&["no"])
        .subresources(&[Subresource::Status, Subresource::Proxy])
}

/// Upstream's `Node` strategy and printer.
pub struct NodeStrategy;

impl Strategy for NodeStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Node>(input)
    }

    fn has_status(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        let status = obj_mut(obj, "status");
        if let Some(alloc) = status.get("capacity").cloned() {
            set_default(status, "allocatable", alloc);
        }
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Node", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
            col("External-IP", "string", 1),
            col("OS-Image", "string", 1),
            col("Kernel-Version", "string", 1),
            col("Container-Runtime", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        let conds = o["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut status = match conds
            .iter()
            .find(|c| c["type"] == "Ready")
            .map(|c| s(&c["status"]))
        {
            Some(x) if x == "True" => "Ready".to_string(),
            Some(x) if x == "False" => "NotReady".to_string(),
            _ => "Unknown".to_string(),
        };
        if o["spec"]["unschedulable"].as_bool() == Some(true) {
            status.push_str(",SchedulingDisabled");
        }
        let roles: Vec<String> = o["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
            .collect();
        let addr = |t: &str| {
            none_if_empty(
                o["status"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .map(|a| s(&a["address"]))
                    .unwrap_or_default(),
            )
        };
        let info = &o["status"]["nodeInfo"];
        vec![
            name,
            json!(status),
            json!(none_if_empty(roles.join(","))),
            a,
            json!(s(&info["kubeletVersion"])),
            json!(addr("InternalIP")),
            json!(addr("ExternalIP")),
            json!(none_if_empty(s(&info["osImage"]))),
            json!(none_if_empty(s(&info["kernelVersion"]))),
            json!(none_if_empty(s(&info["containerRuntimeVersion"]))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            NodeStrategy.cells(&json!({})).len(),
            NodeStrategy.columns().len()
        );
    }
}
