//! Per-path list metadata for server-side apply and strategic merge, read from the
//! schemas' `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` (or, failing that,
//! `x-kubernetes-patch-strategy: merge` + `x-kubernetes-patch-merge-key`).
//!
//! k8s-openapi's built-in schemas carry none of these extensions, so for built-in
//! kinds [`list_type`] finds nothing and answers `None`; nothing is made up. Custom
//! resource schemas do carry them when their CRD declares them ([`schema_list_type`]).

use serde_json::Value;

use crate::builtin::{builtin_name, component_schema};
use crate::convert::REF_PREFIX;

/// How a list merges, as its schema declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole (`x-kubernetes-list-type: atomic`).
    Atomic,
    /// A set of scalars (`set`, or `patch-strategy: merge` without a merge key).
    Set,
    /// A map keyed by these fields of its items (`map` + `x-kubernetes-list-map-keys`,
    /// or `patch-strategy: merge` + `patch-merge-key`).
    Map(Vec<String>),
}

/// The list type of the field at `path` (field names from the root, list indexes
/// elided, e.g. `["spec","template","spec","containers","ports"]`) in a built-in kind,
/// if its schema declares one. Built-in schemas (k8s-openapi) declare none today.
pub fn list_type(group: &str, version: &str, kind: &str, path: &[&str]) -> Option<ListType> {
    let root = component_schema(builtin_name(group, version, kind)?)?;
    walk(root, path)
}

/// [`list_type`] for a schema of one's own (a custom resource's `openAPIV3Schema` or
/// a component schema); `$ref`s are resolved against the built-in components.
pub fn schema_list_type(schema: &Value, path: &[&str]) -> Option<ListType> {
    walk(schema, path)
}

/// How deep `$ref`/`allOf` chains are followed (schemas can be recursive).
const MAX_INDIRECTION: usize = 8;

/// A schema and what it stands for: its `$ref` target and its `allOf` members,
/// transitively (a field's extensions may sit on the wrapper or on the target).
fn views<'a>(s: &'a Value, out: &mut Vec<&'a Value>, depth: usize) {
    if depth > MAX_INDIRECTION || !s.is_object() {
        return;
    }
    out.push(s);
    if let Some(target) = s["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix(REF_PREFIX))
        .and_then(component_schema)
    {
        views(target, out, depth + 1);
    }
    if let Some(all) = s["allOf"].as_array() {
        for m in all {
            views(m, out, depth + 1);
        }
    }
}

fn views_of(s: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    views(s, &mut out, 0);
    out
}

fn walk(root: &Value, path: &[&str]) -> Option<ListType> {
    let mut field = root;
    for seg in path {
        let mut vs = views_of(field);
        // List indexes are elided: step into the items of (nested) arrays.
        for _ in 0..MAX_INDIRECTION {
            let Some(items) = vs.iter().find_map(|v| v.get("items")) else {
                break;
            };
            vs = views_of(items);
        }
        field = vs
            .iter()
            .find_map(|v| v.get("properties").and_then(|p| p.get(*seg)))
            .or_else(|| {
                vs.iter()
                    .find_map(|v| v.get("additionalProperties").filter(|a| a.is_object()))
            })?;
    }
    declared(field)
}

fn declared(field: &Value) -> Option<ListType> {
    let vs = views_of(field);
    for v in &vs {
        match v["x-kubernetes-list-type"].as_str() {
            Some("atomic") => return Some(ListType::Atomic),
            Some("set") => return Some(ListType::Set),
            Some("map") => {
                let keys = v["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|ks| {
                        ks.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                return Some(ListType::Map(keys));
            }
            _ => {}
        }
    }
    for v in &vs {
        let merges = v["x-kubernetes-patch-strategy"]
            .as_str()
            .is_some_and(|s| s.split(',').any(|p| p.trim() == "merge"));
        if merges {
            return Some(match v["x-kubernetes-patch-merge-key"].as_str() {
                Some(k) => ListType::Map(vec![k.to_string()]),
                None => ListType::Set,
            });
        }
    }
    None
}
