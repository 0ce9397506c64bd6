//! `v1 Event`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, col, typed};

/// The `events` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new("", "v1", "events", "event", "Event", true, EventStrategy).short_names(&["ev"])
}

/// Upstream's `Event` strategy and printer.
pub struct EventStrategy;

impl Strategy for EventStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Event>(input)
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        EVENT_FIELD_SELECTORS
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Event", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Message", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let last = if o["lastTimestamp"].is_string() {
            &o["lastTimestamp"]
        } else if o["eventTime"].is_string() {
            &o["eventTime"]
        } else {
            &o["metadata"]["creationTimestamp"]
        };
        let obj = if o["involvedObject"].is_object() {
            &o["involvedObject"]
        } else {
            &o["regarding"]
        };
        let message = if o["message"].is_string() {
            &o["message"]
        } else {
            &o["note"]
        };
        vec![
            json!(age(last)),
            json!(s(&o["type"])),
            json!(s(&o["reason"])),
            json!(format!(
                "{}/{}",
                s(&obj["kind"]).to_lowercase(),
                s(&obj["name"])
            )),
            json!(s(message)),
        ]
    }
}

/// Field selectors of both Event APIs (they share storage).
pub(crate) const EVENT_FIELD_SELECTORS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "regarding.kind",
    "regarding.name",
    "regarding.namespace",
    "regarding.uid",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            EventStrategy.cells(&json!({})).len(),
            EventStrategy.columns().len()
        );
    }
}
