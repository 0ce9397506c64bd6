//! From what schemars emits to upstream's `OpenAPI` v3 shape.

use serde_json::{Map, Value, json};

/// Where component schemas live in an `OpenAPI` v3 document.
pub(crate) const REF_PREFIX: &str = "#/components/schemas/";

/// The `$ref` string for a component schema.
pub(crate) fn ref_to(name: &str) -> String {
    format!("{REF_PREFIX}{name}")
}

/// Keys whose values are data (examples, defaults, enums, CEL rules), never schemas.
const DATA_KEYS: &[&str] = &["default", "enum", "example", "x-kubernetes-validations"];

/// Rewrites one generated schema in place:
/// - a `$ref` with siblings (k8s-openapi attaches a field's description to the ref
///   of its type) becomes `allOf: [{$ref}]` plus the siblings, as upstream writes it:
///   `OpenAPI` 3.0 ignores siblings of `$ref`, and kubectl explain follows `allOf`;
/// - boolean schemas become objects (`true` -> `{}`, `false` -> `{not: {}}`).
pub(crate) fn to_openapi_v3(schema: &mut Value) {
    match schema {
        Value::Bool(b) => {
            *schema = if *b { json!({}) } else { json!({"not": {}}) };
        }
        Value::Object(obj) => {
            for (k, v) in obj.iter_mut() {
                if DATA_KEYS.contains(&k.as_str()) {
                    continue;
                }
                match v {
                    Value::Object(_) if is_schema_map_key(k) => {
                        if let Value::Object(m) = v {
                            for s in m.values_mut() {
                                to_openapi_v3(s);
                            }
                        }
                    }
                    // `additionalProperties: true|false` is valid `OpenAPI` 3.0: kept.
                    Value::Object(_) if is_schema_key(k) => to_openapi_v3(v),
                    Value::Bool(_) if is_schema_key(k) && k != "additionalProperties" => {
                        to_openapi_v3(v);
                    }
                    Value::Array(items) if k == "allOf" || k == "anyOf" || k == "oneOf" => {
                        items.iter_mut().for_each(to_openapi_v3);
                    }
                    _ => {}
                }
            }
            if obj.len() > 1
                && let Some(r) = obj.remove("$ref")
            {
                let mut out = Map::new();
                out.insert("allOf".into(), json!([{"$ref": r}]));
                out.append(obj);
                *obj = out;
            }
        }
        _ => {}
    }
}

/// Keys whose value is one schema.
fn is_schema_key(k: &str) -> bool {
    matches!(k, "items" | "additionalProperties" | "not")
}

/// Keys whose value maps names to schemas.
fn is_schema_map_key(k: &str) -> bool {
    matches!(k, "properties" | "patternProperties")
}

/// Sets `x-kubernetes-group-version-kind` to the one GVK (upstream's key order).
pub(crate) fn set_gvk(schema: &mut Value, group: &str, version: &str, kind: &str) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": group, "kind": kind, "version": version}]),
        );
    }
}

/// Whether a schema's `x-kubernetes-group-version-kind` names this GVK.
pub(crate) fn has_gvk(schema: &Value, group: &str, version: &str, kind: &str) -> bool {
    schema["x-kubernetes-group-version-kind"]
        .as_array()
        .is_some_and(|l| {
            l.iter()
                .any(|g| g["group"] == group && g["version"] == version && g["kind"] == kind)
        })
}

/// Drops `field` from a schema's `required` (and `required` itself once empty).
pub(crate) fn unrequire(schema: &mut Value, field: &str) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(req)) = obj.get_mut("required") {
        req.retain(|r| r != field);
        if req.is_empty() {
            obj.remove("required");
        }
    }
}

/// Every component name a value refers to through `$ref: #/components/schemas/...`.
pub(crate) fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(obj) => {
            for (k, x) in obj {
                if k == "$ref" {
                    if let Some(name) = x.as_str().and_then(|s| s.strip_prefix(REF_PREFIX)) {
                        out.push(name);
                    }
                } else if !DATA_KEYS.contains(&k.as_str()) {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
