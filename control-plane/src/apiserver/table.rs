//! `meta.k8s.io/v1` Table output: the columns each kind's strategy prints.

use serde_json::{Value, json};

use super::Req;
use crate::registry::Resource;

fn row_object(o: &Value, include: Option<&str>) -> Value {
    match include {
        Some("None") => Value::Null,
        Some("Object") => o.clone(),
        _ => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
        }
    }
}

fn column_defs(r: &Resource) -> Vec<Value> {
    r.strategy
        .columns()
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.ty, "format": format, "description": c.description, "priority": c.priority})
        })
        .collect()
}

/// A Table of `items`.
pub(super) fn table(
    r: &Resource,
    items: &[Value],
    with_defs: bool,
    req: &Req,
    rev: Option<i64>,
    cont: Option<String>,
) -> Value {
    let include = req.q("includeObject");
    let rows: Vec<Value> = items
        .iter()
        .map(|o| json!({"cells": r.strategy.cells(o), "object": row_object(o, include)}))
        .collect();
    let mut meta = json!({});
    if let Some(rev) = rev {
        meta["resourceVersion"] = json!(rev.to_string());
    }
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": if with_defs { column_defs(r) } else { Vec::new() },
        "rows": rows,
    })
}

/// The Table a watch event carries: one row; column definitions only in the first event.
pub(super) fn table_for_watch(
    r: &Resource,
    obj: &Value,
    first: bool,
    include: Option<&str>,
    _wide: bool,
) -> Value {
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "columnDefinitions": if first { column_defs(r) } else { Vec::new() },
        "rows": [{"cells": r.strategy.cells(obj), "object": row_object(obj, include)}],
    })
}
