//! `v1 Endpoints`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, n, none_if_empty, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};

/// The `endpoints` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        EndpointsStrategy,
    )
    .short_names(&["ep"])
}

/// Upstream's `Endpoints` strategy and printer.
pub struct EndpointsStrategy;

impl Strategy for EndpointsStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Endpoints>(input)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Endpoints", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Endpoints", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        let mut eps = Vec::new();
        for ss in o["subsets"].as_array().into_iter().flatten() {
            for ad in ss["addresses"].as_array().into_iter().flatten() {
                for p in ss["ports"].as_array().into_iter().flatten() {
                    eps.push(format!("{}:{}", s(&ad["ip"]), n(&p["port"])));
                }
            }
        }
        let shown = if eps.len() > 3 {
            format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
        } else {
            none_if_empty(eps.join(","))
        };
        vec![name, json!(shown), a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            EndpointsStrategy.cells(&json!({})).len(),
            EndpointsStrategy.columns().len()
        );
    }
}
