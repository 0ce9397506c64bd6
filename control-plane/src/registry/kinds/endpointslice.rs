//! `discovery.k8s.io/v1 EndpointSlice`: its strategy and resource entry.

use k8s_openapi::api::discovery::v1;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, n, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};

/// The `endpointslices` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        EndpointSliceStrategy,
    )
}

/// Upstream's `EndpointSlice` strategy and printer.
pub struct EndpointSliceStrategy;

impl Strategy for EndpointSliceStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::EndpointSlice>(input)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("EndpointSlice", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("AddressType", "string", 0),
            col("Ports", "string", 0),
            col("Endpoints", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        let ports: Vec<String> = o["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| n(&p["port"]).to_string())
            .collect();
        let addrs: Vec<String> = o["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
            .map(|a| s(&a))
            .collect();
        let shown = if addrs.len() > 3 {
            format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
        } else if addrs.is_empty() {
            "<unset>".into()
        } else {
            addrs.join(",")
        };
        vec![
            name,
            json!(s(&o["addressType"])),
            json!(if ports.is_empty() {
                "<unset>".into()
            } else {
                ports.join(",")
            }),
            json!(shown),
            a,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            EndpointSliceStrategy.cells(&json!({})).len(),
            EndpointSliceStrategy.columns().len()
        );
    }
}
