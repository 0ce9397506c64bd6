//! JSON patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy`, `test`.
//!
//! Operations run in order on a copy of the document; the first failure aborts the whole patch
//! and the caller's document is never touched.

use serde_json::Value;

use crate::PatchError;

/// Applies a JSON patch (RFC 6902) to `doc` and returns the patched copy.
///
/// `patch` must be an array of operation objects. JSON pointers use RFC 6901 escaping (`~0` for
/// `~`, `~1` for `/`); `-` as the last token of an `add` path appends to an array. The patch is
/// atomic: on error nothing is returned but the error.
///
/// # Errors
/// [`PatchError::JsonPatchNotArray`], [`PatchError::InvalidOperation`] for a malformed operation,
/// [`PatchError::PathNotFound`] for a missing location and [`PatchError::TestFailed`].
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or(PatchError::JsonPatchNotArray)?;
    let mut doc = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_op(&mut doc, index, op)?;
    }
    Ok(doc)
}

fn invalid(index: usize, reason: impl Into<String>) -> PatchError {
    PatchError::InvalidOperation {
        index,
        reason: reason.into(),
    }
}

fn apply_op(doc: &mut Value, index: usize, op: &Value) -> Result<(), PatchError> {
    let obj = op
        .as_object()
        .ok_or_else(|| invalid(index, "an operation must be a JSON object"))?;
    let name = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid(index, "\"op\" must be a string")),
        None => return Err(invalid(index, "missing \"op\"")),
    };
    let path_str = member_str(obj, "path", index)?;
    let path = parse_pointer(path_str).map_err(|r| invalid(index, r))?;
    let not_found = |p: &str| PatchError::PathNotFound {
        index,
        op: name.to_owned(),
        path: p.to_owned(),
    };
    match name {
        "add" => {
            let value = member_value(obj, "value", index)?.clone();
            add(doc, &path, value).map_err(|()| not_found(path_str))
        }
        "remove" => {
            if path.is_empty() {
                return Err(invalid(index, "cannot remove the whole document"));
            }
            remove(doc, &path)
                .map(drop)
                .ok_or_else(|| not_found(path_str))
        }
        "replace" => {
            let value = member_value(obj, "value", index)?.clone();
            let target = get_mut(doc, &path).ok_or_else(|| not_found(path_str))?;
            *target = value;
            Ok(())
        }
        "move" => {
            let from_str = member_str(obj, "from", index)?;
            let from = parse_pointer(from_str).map_err(|r| invalid(index, r))?;
            if from == path {
                return get(doc, &from).map(drop).ok_or_else(|| not_found(from_str));
            }
            if path.len() > from.len() && path[..from.len()] == from[..] {
                return Err(invalid(
                    index,
                    "cannot move a value into one of its own children",
                ));
            }
            if from.is_empty() {
                return Err(invalid(index, "cannot move the whole document"));
            }
            let value = remove(doc, &from).ok_or_else(|| not_found(from_str))?;
            add(doc, &path, value).map_err(|()| not_found(path_str))
        }
        "copy" => {
            let from_str = member_str(obj, "from", index)?;
            let from = parse_pointer(from_str).map_err(|r| invalid(index, r))?;
            let value = get(doc, &from).ok_or_else(|| not_found(from_str))?.clone();
            add(doc, &path, value).map_err(|()| not_found(path_str))
        }
        "test" => {
            let expected = member_value(obj, "value", index)?;
            let actual = get(doc, &path).ok_or_else(|| not_found(path_str))?;
            if json_equal(actual, expected) {
                Ok(())
            } else {
                Err(PatchError::TestFailed {
                    index,
                    path: path_str.to_owned(),
                })
            }
        }
        other => Err(invalid(index, format!("unknown op {other:?}"))),
    }
}

fn member_value<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    index: usize,
) -> Result<&'a Value, PatchError> {
    obj.get(key)
        .ok_or_else(|| invalid(index, format!("missing {key:?}")))
}

fn member_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    index: usize,
) -> Result<&'a str, PatchError> {
    member_value(obj, key, index)?
        .as_str()
        .ok_or_else(|| invalid(index, format!("{key:?} must be a string")))
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "JSON pointer {pointer:?} must be empty or start with '/'"
        ));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("JSON pointer {pointer:?} has a bad '~' escape")),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: decimal digits, no leading zero (except `0` itself).
fn array_index(token: &str) -> Option<usize> {
    if token.is_empty()
        || !token.bytes().all(|b| b.is_ascii_digit())
        || (token.len() > 1 && token.starts_with('0'))
    {
        return None;
    }
    token.parse().ok()
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |cur, token| match cur {
        Value::Object(m) => m.get(token),
        Value::Array(a) => a.get(array_index(token)?),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |cur, token| match cur {
        Value::Object(m) => m.get_mut(token),
        Value::Array(a) => a.get_mut(array_index(token)?),
        _ => None,
    })
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), ()> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent).ok_or(())? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let at = if last == "-" {
                a.len()
            } else {
                array_index(last).ok_or(())?
            };
            if at > a.len() {
                return Err(());
            }
            a.insert(at, value);
            Ok(())
        }
        _ => Err(()),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    match get_mut(doc, parent)? {
        Value::Object(m) => m.shift_remove(last),
        Value::Array(a) => {
            let at = array_index(last)?;
            (at < a.len()).then(|| a.remove(at))
        }
        _ => None,
    }
}

/// RFC 6902 equality: numbers compare by value (`1` equals `1.0`), objects ignore member order.
#[allow(
    clippy::float_cmp,
    reason = "RFC 6902 compares numbers by exact value: 1 and 1.0 are equal, 0.1 and 0.1000001 are not"
)]
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => {
            l == r || matches!((l.as_f64(), r.as_f64()), (Some(l), Some(r)) if l == r)
        }
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(l, r)| json_equal(l, r))
        }
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .all(|(key, lv)| r.get(key).is_some_and(|rv| json_equal(lv, rv)))
        }
        _ => left == right,
    }
}

#[cfg(test)]
mod tests;
