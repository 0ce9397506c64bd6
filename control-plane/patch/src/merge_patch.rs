//! JSON merge patch (RFC 7386).

use serde_json::{Map, Value};

/// Applies a JSON merge patch (RFC 7386) to `doc` and returns the result.
///
/// An object patch merges into the document member by member: `null` deletes the member, an
/// object merges recursively, anything else replaces. A non-object patch replaces the whole
/// document; a non-object document patched with an object starts over from `{}`. Never fails.
#[must_use]
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_into(&mut target, patch);
    Value::Object(target)
}

fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.shift_remove(key);
            }
            Value::Object(sub) => {
                let slot = target.entry(key.clone()).or_insert(Value::Null);
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(m) = slot {
                    merge_into(m, sub);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
