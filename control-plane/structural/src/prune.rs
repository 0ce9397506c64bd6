//! Pruning of unknown fields (`apiserver/schema/pruning`) and of non-nullable
//! `null`s without a default (`defaulting.PruneNonNullableNullsWithoutDefaults`).

use crate::schema::Schema;
use serde_json::Value;

pub(crate) const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

impl Schema {
    /// Removes fields of `obj` the schema does not specify, as the custom
    /// resource codec does on decode and on read from storage.
    ///
    /// `x-kubernetes-preserve-unknown-fields` keeps unknown fields (but still
    /// prunes inside the properties it specifies); an `additionalProperties`
    /// schema applies to every unspecified key; `apiVersion`, `kind` and
    /// `metadata` are kept on `x-kubernetes-embedded-resource` objects and
    /// never touched at the root. Like the codec, it then drops `null`s of
    /// fields that are neither `nullable` nor defaulted.
    ///
    /// Returns the paths of the pruned fields, sorted (`spec.foo`,
    /// `spec.items[0].bar`), for `unknown field` warnings or strict errors.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut out = Vec::new();
        prune(obj, Some(self), &mut String::new(), &mut out, true);
        out.sort();
        prune_nulls(obj, Some(self), true);
        out
    }
}

fn record(path: &str, key: &str, out: &mut Vec<String>) {
    if path.is_empty() {
        out.push(key.to_string());
    } else {
        out.push(format!("{path}.{key}"));
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `prune`: `skip_meta` keeps `apiVersion`/`kind`/`metadata` at this level
/// (the resource root, or an embedded resource).
pub(crate) fn prune(
    x: &mut Value,
    s: Option<&Schema>,
    path: &mut String,
    out: &mut Vec<String>,
    skip_meta: bool,
) {
    if let Some(s) = s
        && s.preserve()
    {
        skip_prune(x, s, path, out, skip_meta);
        return;
    }
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                for k in m.keys() {
                    record(path, k, out);
                }
                m.clear();
                return;
            };
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (s.embedded || skip_meta) && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Ok(sub) = s.field_schema(&k) {
                    let mut p = child_path(path, &k);
                    if let Some(v) = m.get_mut(&k) {
                        prune(v, sub, &mut p, out, false);
                    }
                } else {
                    record(path, &k, out);
                    m.remove(&k);
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for (i, v) in a.iter_mut().enumerate() {
                let mut p = format!("{path}[{i}]");
                prune(v, items, &mut p, out, false);
            }
        }
        _ => {}
    }
}

fn skip_prune(
    x: &mut Value,
    s: &Schema,
    path: &mut String,
    out: &mut Vec<String>,
    skip_meta: bool,
) {
    match x {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if (s.embedded || skip_meta) && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Ok(sub) = s.field_schema(k) {
                    let mut p = child_path(path, k);
                    prune(v, sub, &mut p, out, false);
                }
            }
        }
        Value::Array(a) => {
            let Some(items) = s.items.as_deref() else {
                return;
            };
            for (i, v) in a.iter_mut().enumerate() {
                let mut p = format!("{path}[{i}]");
                skip_prune(v, items, &mut p, out, false);
            }
        }
        _ => {}
    }
}

fn field_schema<'a>(s: Option<&'a Schema>, k: &str) -> Option<&'a Schema> {
    s.and_then(|s| s.field_schema(k).ok().flatten())
}

/// `PruneNonNullableNullsWithoutDefaults`.
pub(crate) fn prune_nulls(x: &mut Value, s: Option<&Schema>, skip_meta: bool) {
    match x {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if skip_meta && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let sub = field_schema(s, &k);
                let drop = m.get(&k).is_some_and(Value::is_null)
                    && sub.is_some_and(|sub| !sub.nullable && sub.default.is_none());
                if drop {
                    m.remove(&k);
                } else if let Some(v) = m.get_mut(&k) {
                    prune_nulls(v, sub, false);
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for v in a {
                prune_nulls(v, items, false);
            }
        }
        _ => {}
    }
}
