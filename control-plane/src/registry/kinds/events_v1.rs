//! `events.k8s.io/v1 Event`: the same objects as core/v1 events (upstream stores them once),
//! with the field renames of upstream's conversion.

use k8s_openapi::api::events;
use serde_json::Value;

use super::super::strategy::{Canonical, Column, Strategy, typed};
use super::super::{Resource, Subresource};
use super::event::{EVENT_FIELD_SELECTORS, EventStrategy};

/// The `events.k8s.io` `events` resource, stored with the core events.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        EventsV1Strategy,
    )
    .short_names(&["ev"])
    .subresources(&[] as &[Subresource])
    .stored_as("events")
}

/// `events.k8s.io/v1` field name <-> `core/v1` field name (upstream's conversion).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename_fields(
    mut v: Value,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
    api_version: &str,
) -> Value {
    if let Some(m) = v.as_object_mut() {
        for (from, to) in pairs {
            if let Some(x) = m.remove(from) {
                m.insert(to.to_string(), x);
            }
        }
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    v
}

/// The `events.k8s.io/v1` view of core events.
pub struct EventsV1Strategy;

impl Strategy for EventsV1Strategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<events::v1::Event>(input)
    }

    fn columns(&self) -> Vec<Column> {
        EventStrategy.columns()
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        EventStrategy.cells(obj)
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        EVENT_FIELD_SELECTORS
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Event", path))
    }

    fn encode_stored(&self, obj: Value) -> Value {
        rename_fields(obj, EVENT_FIELDS.iter().copied(), "v1")
    }

    fn decode_stored(&self, obj: Value) -> Value {
        rename_fields(
            obj,
            EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)),
            "events.k8s.io/v1",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_to_and_from_core_storage() {
        let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "hi",
            "regarding": {"kind": "Pod", "name": "p"}, "deprecatedCount": 2});
        let stored = EventsV1Strategy.encode_stored(e.clone());
        assert_eq!(stored["message"], "hi");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(EventsV1Strategy.decode_stored(stored), e);
    }
}
