//! Defaulting (`apiserver/schema/defaulting.Default`).

use crate::schema::{Additional, Schema};
use serde_json::Value;

impl Schema {
    /// Applies `default`s to `obj`, as upstream does on request decode and on
    /// read from storage (after [`Schema::prune`]).
    ///
    /// A property with a default is set when it is absent, or `null` while
    /// not `nullable`; defaulting then descends into every present value,
    /// including the ones just defaulted. An absent parent without a default
    /// of its own is not created, so defaults below it stay unapplied. Array
    /// items and `additionalProperties` values that are non-nullable `null`s
    /// take their schema's default.
    pub fn apply_defaults(&self, obj: &mut Value) {
        default(obj, Some(self));
    }
}

fn is_non_nullable_null(x: &Value, s: Option<&Schema>) -> bool {
    x.is_null() && s.is_some_and(|s| !s.nullable)
}

fn default(value: &mut Value, schema: Option<&Schema>) {
    let Some(s) = schema else { return };
    match value {
        Value::Object(map) => {
            for (key, prop) in &s.properties {
                let Some(dflt) = &prop.default else { continue };
                let needs = match map.get(key) {
                    None => true,
                    Some(v) => is_non_nullable_null(v, Some(prop)),
                };
                if needs {
                    map.insert(key.clone(), dflt.clone());
                }
            }
            for (key, v) in map.iter_mut() {
                if let Some(prop) = s.property(key) {
                    default(v, Some(prop));
                } else if let Some(ap) = &s.additional {
                    let aps = match ap {
                        Additional::Schema(a) => Some(&**a),
                        Additional::Bool(_) => None,
                    };
                    if is_non_nullable_null(v, aps) {
                        *v = aps.and_then(|a| a.default.clone()).unwrap_or(Value::Null);
                    }
                    default(v, aps);
                }
            }
        }
        Value::Array(a) => {
            let items = s.items.as_deref();
            for v in a {
                if is_non_nullable_null(v, items) {
                    *v = items.and_then(|i| i.default.clone()).unwrap_or(Value::Null);
                }
                default(v, items);
            }
        }
        _ => {}
    }
}
