//! `coordination.k8s.io/v1 Lease`: its strategy and resource entry.

use k8s_openapi::api::coordination::v1;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::none_if_empty;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};

/// The `leases` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        LeaseStrategy,
    )
}

/// Upstream's `Lease` strategy and printer.
pub struct LeaseStrategy;

impl Strategy for LeaseStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Lease>(input)
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Lease", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Holder", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        vec![
            name,
            json!(none_if_empty(s(&o["spec"]["holderIdentity"]))),
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
            LeaseStrategy.cells(&json!({})).len(),
            LeaseStrategy.columns().len()
        );
    }
}
