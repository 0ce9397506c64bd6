//! Kubernetes strategic merge patch, as applied by the API server.
//!
//! Follows `StrategicMergeMapPatch` of k8s.io/apimachinery/pkg/util/strategicpatch (server side:
//! parallel lists merged, unmatched nulls ignored):
//!
//! - maps merge recursively; `null` deletes a key; a value of another JSON type replaces;
//! - lists follow the field's [`ListStrategy`]: atomic lists are replaced, lists merged by key
//!   match elements on the key and merge them (unmatched patch elements are added), primitive
//!   merge lists take the set union;
//! - `$patch: replace` / `$patch: delete` in a map replace it with the patch's content / `{}`;
//!   in a list element, `delete` removes the elements with that key and `replace` makes the
//!   patch's elements the whole list;
//! - `$deleteFromPrimitiveList/<field>` removes scalars from a list;
//! - `$setElementOrder/<field>` orders the named elements as listed, server-only elements keep
//!   their place relative to them (never an error, unlike Go, which rejects a patch list whose
//!   order disagrees);
//! - `$retainKeys` drops every key of the live map not listed (and rejects patch keys not listed).
//!
//! Ordering when merging lists follows Go exactly: patch elements take the patch's order,
//! elements only on the server are interleaved by their live position, and an element that is
//! new (not on the server) goes before server-only elements it is compared with, so a merge that
//! adds `c` to `[a, b]` without `$setElementOrder` yields `[c, a, b]`.
//!
//! Deliberate differences from Go, all for inputs `kubectl` does not send:
//! - `$patch: merge` is accepted as a no-op (Go rejects it);
//! - values copied from the patch (new keys, atomic lists, `$patch: replace`) are cleaned: `null`
//!   members, maps holding `$patch` and other `$` directive keys are dropped, which is what Go's
//!   typed decoding of the result amounts to;
//! - `$setElementOrder` whose list disagrees with the patch list is not an error;
//! - any other key starting with `$` is an [`PatchError::UnknownDirective`] error.

use std::mem;

use serde_json::{Map, Value};

use crate::PatchError;
use crate::schema::{KindSchema, ListStrategy, PatchSchema};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies a strategic merge patch to an object of the built-in `kind` (`"Pod"`,
/// `"Deployment"`, ...), using the strategies of [`crate::list_strategy`].
///
/// A `null` document counts as `{}`; a `null` patch changes nothing.
///
/// # Errors
/// [`PatchError::NotAnObject`] if the document or patch is not an object, and the strategic
/// merge patch variants for malformed directives, missing merge keys and unmergeable lists.
pub fn strategic_merge_patch(doc: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    strategic_merge_patch_with(doc, patch, &KindSchema { kind })
}

/// Applies a strategic merge patch with an explicit [`PatchSchema`].
///
/// # Errors
/// As [`strategic_merge_patch`].
pub fn strategic_merge_patch_with(
    doc: &Value,
    patch: &Value,
    schema: &dyn PatchSchema,
) -> Result<Value, PatchError> {
    let original = match doc {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => return Err(PatchError::NotAnObject { what: "document" }),
    };
    let patch = match patch {
        Value::Null => return Ok(Value::Object(original)),
        Value::Object(m) => m.clone(),
        _ => return Err(PatchError::NotAnObject { what: "patch" }),
    };
    let mut cx = Cx {
        schema,
        path: Vec::new(),
    };
    cx.merge_map(original, patch).map(Value::Object)
}

/// Walk state: the schema and the field path of the map or list being merged.
struct Cx<'a> {
    schema: &'a dyn PatchSchema,
    path: Vec<String>,
}

/// Element kind of a list being merged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ElemKind {
    Map,
    Scalar,
}

impl Cx<'_> {
    fn field(&self) -> String {
        self.path.join(".")
    }

    fn strategy(&self, key: &str) -> ListStrategy {
        let mut path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        path.push(key);
        self.schema.list_strategy(&path)
    }

    fn bad_directive(&self, reason: String) -> PatchError {
        PatchError::BadDirective {
            field: self.field(),
            reason,
        }
    }

    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.shift_remove(DIRECTIVE) {
            match directive.as_str() {
                Some("replace") => return Ok(clean_map(patch)),
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {}
                _ => {
                    return Err(PatchError::UnknownDirective {
                        field: self.field(),
                        directive: format!("{DIRECTIVE}: {directive}"),
                    });
                }
            }
        }
        self.apply_retain_keys(&mut original, &mut patch)?;
        self.apply_set_element_order(&mut original, &mut patch)?;

        for (raw_key, patch_value) in patch {
            let (key, delete_list) =
                if let Some(rest) = raw_key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                    let Some(name) = rest.strip_prefix('/') else {
                        return Err(self.bad_directive(format!(
                            "{raw_key:?}: expected {DELETE_FROM_PRIMITIVE_LIST}/<field>"
                        )));
                    };
                    if !(patch_value.is_array() || patch_value.is_null()) {
                        return Err(self.bad_directive(format!("{raw_key} must be a list")));
                    }
                    (name.to_owned(), true)
                } else if raw_key.starts_with('$') {
                    return Err(PatchError::UnknownDirective {
                        field: self.field(),
                        directive: raw_key,
                    });
                } else {
                    (raw_key, false)
                };

            if patch_value.is_null() {
                original.shift_remove(&key);
                continue;
            }
            let Some(slot) = original.get_mut(&key) else {
                if !delete_list && let Some(v) = clean(patch_value) {
                    original.insert(key, v);
                }
                continue;
            };
            if mem::discriminant(slot) != mem::discriminant(&patch_value) {
                if !delete_list {
                    match clean(patch_value) {
                        Some(v) => *slot = v,
                        None => {
                            original.shift_remove(&key);
                        }
                    }
                }
                continue;
            }
            let current = mem::take(slot);
            let merged = match (current, patch_value) {
                (Value::Object(o), Value::Object(p)) => {
                    self.path.push(key.clone());
                    let r = self.merge_map(o, p);
                    self.path.pop();
                    Value::Object(r?)
                }
                (Value::Array(o), Value::Array(p)) => {
                    let strategy = self.strategy(&key);
                    self.path.push(key.clone());
                    let r = self.merge_list(o, p, strategy, delete_list);
                    self.path.pop();
                    Value::Array(r?.0)
                }
                (_, scalar) => scalar,
            };
            if let Some(slot) = original.get_mut(&key) {
                *slot = merged;
            }
        }
        Ok(original)
    }

    /// `$retainKeys`: keep only the listed keys of the live map; every non-null patch key must be
    /// listed.
    fn apply_retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<(), PatchError> {
        let Some(list) = patch.shift_remove(RETAIN_KEYS) else {
            return Ok(());
        };
        let Value::Array(list) = list else {
            return Err(self.bad_directive(format!("{RETAIN_KEYS} must be a list of field names")));
        };
        let listed = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
        for (k, v) in patch.iter() {
            if v.is_null()
                || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                || k.starts_with(SET_ELEMENT_ORDER)
            {
                continue;
            }
            if !listed(k) {
                return Err(self.bad_directive(format!(
                    "field {k:?} is in the patch but not in {RETAIN_KEYS}"
                )));
            }
        }
        original.retain(|k, _| listed(k));
        Ok(())
    }

    /// `$setElementOrder/<field>`: merges the field's patch list (if any) into the live list and
    /// orders the result. Consumes both the directive and the field from `patch`.
    fn apply_set_element_order(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<(), PatchError> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for raw_key in keys {
            let order = patch.shift_remove(&raw_key).unwrap_or_default();
            let Some(name) = raw_key
                .strip_prefix(SET_ELEMENT_ORDER)
                .and_then(|r| r.strip_prefix('/'))
            else {
                return Err(self
                    .bad_directive(format!("{raw_key:?}: expected {SET_ELEMENT_ORDER}/<field>")));
            };
            let Value::Array(order) = order else {
                return Err(self.bad_directive(format!("{raw_key} must be a list")));
            };
            let name = name.to_owned();
            let live = match original.get(&name) {
                Some(Value::Array(a)) => Some(a.clone()),
                _ => None,
            };
            let patch_list = match patch.get(&name) {
                Some(Value::Array(_)) => match patch.shift_remove(&name) {
                    Some(Value::Array(a)) => Some(a),
                    _ => None,
                },
                // Not a list (e.g. null): leave it to the ordinary merge, nothing to order.
                Some(_) => continue,
                None => None,
            };
            let strategy = self.strategy(&name);
            self.path.push(name.clone());
            let result = match (live, patch_list) {
                (Some(live), None) => Ok((live.clone(), live)),
                (None, Some(p)) => Ok((clean_list(p), Vec::new())),
                (Some(live), Some(p)) => self.merge_list(live, p, strategy, false),
                (None, None) => {
                    self.path.pop();
                    continue;
                }
            };
            self.path.pop();
            let (merged, server_order) = result?;
            let key = match strategy {
                ListStrategy::MergeByKey(k) if merged.iter().all(Value::is_object) => Some(k),
                _ => None,
            };
            let (in_order, server_only) = partition(merged, &order, key);
            let ordered = normalize_order(in_order, server_only, &order, &server_order, key);
            original.insert(name, Value::Array(ordered));
        }
        Ok(())
    }

    /// Merges a patch list into a live list (`self.path` ends with the list's field name).
    ///
    /// Returns the merged list and the live order to use when a `$setElementOrder` reorders it.
    /// That order reproduces Go's, whose in-place slice deletions let the first added elements
    /// take the slots of deleted ones.
    fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        strategy: ListStrategy,
        delete_list: bool,
    ) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
        if strategy == ListStrategy::Atomic && !delete_list {
            return Ok((clean_list(patch), original));
        }
        if original.is_empty() && patch.is_empty() {
            return Ok((original, Vec::new()));
        }
        match self.elem_kind(&original, &patch)? {
            ElemKind::Scalar if delete_list => {
                let kept: Vec<Value> = original
                    .into_iter()
                    .filter(|v| !patch.contains(v))
                    .collect();
                Ok((kept.clone(), kept))
            }
            ElemKind::Scalar => {
                let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
                for v in original.iter().chain(&patch) {
                    if !merged.contains(v) {
                        merged.push(v.clone());
                    }
                }
                let (in_patch, server_only) = partition(merged, &patch, None);
                let ordered = normalize_order(in_patch, server_only, &patch, &original, None);
                Ok((ordered, original))
            }
            ElemKind::Map if delete_list => Err(PatchError::InvalidList {
                field: self.field(),
                reason: format!("{DELETE_FROM_PRIMITIVE_LIST} applies to lists of scalars only"),
            }),
            ElemKind::Map => {
                let ListStrategy::MergeByKey(key) = strategy else {
                    return Err(PatchError::InvalidList {
                        field: self.field(),
                        reason: "cannot merge a list of objects without a merge key".to_owned(),
                    });
                };
                self.merge_list_by_key(original, patch, key)
            }
        }
    }

    fn merge_list_by_key(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        key: &'static str,
    ) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
        let missing_key = |cx: &Self, element: &Map<String, Value>| PatchError::MissingMergeKey {
            field: cx.field(),
            key: key.to_owned(),
            element: Value::Object(element.clone()).to_string(),
        };
        // Special elements first: deletions, replace, merge markers.
        let mut remaining = original;
        let mut plain: Vec<Map<String, Value>> = Vec::new();
        let mut replace = false;
        let mut deleted = 0;
        for element in patch {
            let Value::Object(mut m) = element else {
                return Err(self.non_object_element());
            };
            let Some(directive) = m.get(DIRECTIVE) else {
                plain.push(m);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let Some(wanted) = m.get(key) else {
                        return Err(missing_key(self, &m));
                    };
                    let before = remaining.len();
                    remaining.retain(|x| x.get(key) != Some(wanted));
                    deleted += before - remaining.len();
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    m.shift_remove(DIRECTIVE);
                    if m.contains_key(key) {
                        plain.push(m);
                    }
                }
                _ => {
                    return Err(PatchError::UnknownDirective {
                        field: self.field(),
                        directive: format!("{DIRECTIVE}: {directive}"),
                    });
                }
            }
        }
        // Go's in-place deletions leave the live slice holding `remaining`; with `replace` the
        // patch elements become the list (and its order).
        let (mut merged, patch_elems, live_view) = if replace {
            let base = plain
                .into_iter()
                .filter_map(|m| clean(Value::Object(m)))
                .collect();
            (base, Vec::new(), Some(remaining))
        } else {
            (remaining, plain, None)
        };
        let server_order = merged.clone();
        let mut patch_ids: Vec<Value> = Vec::with_capacity(patch_elems.len());
        for p in patch_elems {
            let Some(id) = p.get(key).cloned() else {
                return Err(missing_key(self, &p));
            };
            match merged.iter().position(|x| x.get(key) == Some(&id)) {
                Some(i) => {
                    let Value::Object(live) = mem::take(&mut merged[i]) else {
                        return Err(self.non_object_element());
                    };
                    merged[i] = Value::Object(self.merge_map(live, p)?);
                }
                None => {
                    if let Some(v) = clean(Value::Object(p)) {
                        merged.push(v);
                    }
                }
            }
            patch_ids.push(Value::Object(Map::from_iter([(key.to_owned(), id)])));
        }
        if let Some(bad) = merged.iter().find(|v| v.get(key).is_none()) {
            return Err(match bad {
                Value::Object(m) => missing_key(self, m),
                _ => self.non_object_element(),
            });
        }
        let view = live_view.unwrap_or_else(|| {
            let visible = (server_order.len() + deleted).min(merged.len());
            merged[..visible].to_vec()
        });
        let (in_patch, server_only) = partition(merged, &patch_ids, Some(key));
        let ordered = normalize_order(in_patch, server_only, &patch_ids, &server_order, Some(key));
        Ok((ordered, view))
    }

    fn non_object_element(&self) -> PatchError {
        PatchError::InvalidList {
            field: self.field(),
            reason: "every element of a list merged by key must be an object".to_owned(),
        }
    }

    /// The common element kind of both lists; errors on lists of lists and mixed types.
    fn elem_kind(&self, a: &[Value], b: &[Value]) -> Result<ElemKind, PatchError> {
        let mut seen: Option<mem::Discriminant<Value>> = None;
        for v in a.iter().chain(b) {
            if v.is_array() {
                return Err(PatchError::InvalidList {
                    field: self.field(),
                    reason: "lists of lists are not supported".to_owned(),
                });
            }
            let d = mem::discriminant(v);
            if seen.is_some_and(|s| s != d) {
                return Err(PatchError::InvalidList {
                    field: self.field(),
                    reason: "list element types are not identical".to_owned(),
                });
            }
            seen = Some(d);
        }
        let is_map = a.iter().chain(b).next().is_some_and(Value::is_object);
        Ok(if is_map {
            ElemKind::Map
        } else {
            ElemKind::Scalar
        })
    }
}

/// What identifies a list element: its merge key's value, or the element itself.
fn ident<'v>(v: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(k) => v.get(k),
        None => Some(v),
    }
}

fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = ident(item, key);
    list.iter().position(|x| ident(x, key) == id)
}

/// Splits `items` into those named in `by` and the rest, keeping relative order.
fn partition(items: Vec<Value>, by: &[Value], key: Option<&str>) -> (Vec<Value>, Vec<Value>) {
    items
        .into_iter()
        .partition(|v| position(by, v, key).is_some())
}

/// Go's `normalizeElementOrder`: sorts the patch elements by `patch_order` and the server-only
/// ones by `server_order`, then interleaves them: a server-only element goes first only when
/// both it and the next patch element are in `server_order` and it comes earlier there.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    patch_items.sort_by_key(|v| position(patch_order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, key), position(server_order, r, key)),
                (Some(i), Some(j)) if i < j
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// A value copied from the patch: drops `null` members, maps holding `$patch` (`None` for the
/// value itself) and other `$` directive keys.
fn clean(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(clean_map(m))),
        Value::Array(a) => Some(Value::Array(clean_list(a))),
        other => Some(other),
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(a: Vec<Value>) -> Vec<Value> {
    a.into_iter().filter_map(clean).collect()
}

#[cfg(test)]
mod tests;
