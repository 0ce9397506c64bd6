//! Schema-driven walks over objects: field sets, comparison, apply merge and pruning.
//!
//! These follow structured-merge-diff's `typed` package (`tofieldset.go`, `compare.go`,
//! `merge.go`, `remove.go`) with one simplification: with no `OpenAPI` schema at hand,
//! every object is taken as a struct (its fields are "named fields"), and atomicity comes
//! from [`Schema`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use sluice_k8s_values::gofmt::quote;

use crate::fieldpath::{Path, PathElement, Set, path_to_string, values_equal};
use crate::{ListType, Schema};

/// What changed between two objects (upstream `typed.Comparison`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: Set,
    pub(crate) modified: Set,
    pub(crate) removed: Set,
}

impl Comparison {
    /// Drops everything under the reset (ignored) fields.
    pub(crate) fn exclude(self, reset: &Set) -> Self {
        Self {
            added: self.added.recursive_difference(reset),
            modified: self.modified.recursive_difference(reset),
            removed: self.removed.recursive_difference(reset),
        }
    }
}

/// How a value is walked at a given path.
#[derive(PartialEq, Eq)]
enum Node {
    /// A granular object.
    Map,
    /// A granular (set or map) list.
    List,
    /// A scalar, null, or an atomic object or list.
    Leaf,
}

fn err_at(path: &[PathElement], msg: &str) -> String {
    if path.is_empty() {
        msg.to_owned()
    } else {
        format!("{}: {msg}", path_to_string(path))
    }
}

/// The schema walker.
pub(crate) struct Typed<'s> {
    pub(crate) schema: &'s dyn Schema,
}

impl Typed<'_> {
    fn node(&self, v: &Value, names: &[&str]) -> Node {
        match v {
            Value::Object(_) if names.is_empty() || !self.schema.is_atomic_map(names) => Node::Map,
            Value::Array(_) if !matches!(self.schema.list_type(names), ListType::Atomic) => {
                Node::List
            }
            _ => Node::Leaf,
        }
    }

    /// The path element of one item of a granular list (upstream `listItemToPathElement`).
    fn item_pe(&self, names: &[&str], item: &Value) -> Result<PathElement, String> {
        match self.schema.list_type(names) {
            ListType::Map(keys) if !keys.is_empty() => {
                let map = match item {
                    Value::Null => {
                        return Err(
                            "associative list with keys may not have a null element".to_owned()
                        );
                    }
                    Value::Object(map) => map,
                    _ => {
                        return Err(
                            "associative list with keys may not have non-map elements".to_owned()
                        );
                    }
                };
                let mut fields = Vec::with_capacity(keys.len());
                for key in &keys {
                    if let Some(v) = map.get(key) {
                        fields.push((key.clone(), v.clone()));
                    } else if let Some(default) = self.schema.key_default(names, key) {
                        fields.push((key.clone(), default));
                    }
                }
                if fields.is_empty() {
                    let quoted: Vec<String> = keys.iter().map(|k| quote(k)).collect();
                    return Err(format!(
                        "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                        quoted.join(" ")
                    ));
                }
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(fields))
            }
            _ => match item {
                Value::Object(_) => {
                    Err("associative list without keys has an element that's a map type".to_owned())
                }
                Value::Array(_) => {
                    Err("not supported: associative list with lists as elements".to_owned())
                }
                Value::Null => Err(
                    "associative list without keys has an element that's an explicit null"
                        .to_owned(),
                ),
                scalar => Ok(PathElement::Value(scalar.clone())),
            },
        }
    }

    /// Path elements of every item, in order; `strict` rejects duplicates (an apply
    /// configuration), otherwise they are allowed (a live object).
    fn item_pes(
        &self,
        names: &[&str],
        path: &[PathElement],
        items: &[Value],
        strict: bool,
    ) -> Result<Vec<PathElement>, String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let pe = self
                .item_pe(names, item)
                .map_err(|e| err_at(path, &format!("element {i}: {e}")))?;
            if strict && !seen.insert(pe.clone()) {
                return Err(err_at(path, &format!("duplicate entries for key {pe}")));
            }
            out.push(pe);
        }
        Ok(out)
    }

    /// The fields an object sets (upstream `ToFieldSet`): leaves, empty objects, nulls,
    /// atomic values and list items are members; granular objects are not.
    pub(crate) fn field_set(&self, v: &Value, strict: bool) -> Result<Set, String> {
        let mut set = Set::new();
        self.fs_walk(v, &mut Vec::new(), &mut Vec::new(), &mut set, strict)?;
        Ok(set)
    }

    fn fs_walk<'v>(
        &self,
        v: &'v Value,
        names: &mut Vec<&'v str>,
        path: &mut Path,
        set: &mut Set,
        strict: bool,
    ) -> Result<(), String> {
        match (self.node(v, names), v) {
            (Node::Map, Value::Object(map)) => {
                if map.is_empty() {
                    set.insert(path);
                }
                for (k, child) in map {
                    names.push(k);
                    path.push(PathElement::Field(k.clone()));
                    let r = self.fs_walk(child, names, path, set, strict);
                    path.pop();
                    names.pop();
                    r?;
                }
            }
            (Node::List, Value::Array(items)) => {
                let pes = self.item_pes(names, path, items, strict)?;
                let mut count: BTreeMap<&PathElement, usize> = BTreeMap::new();
                for pe in &pes {
                    *count.entry(pe).or_default() += 1;
                }
                for (pe, item) in pes.iter().zip(items) {
                    path.push(pe.clone());
                    if count[pe] == 1 {
                        let r = self.fs_walk(item, names, path, set, strict);
                        if r.is_err() {
                            path.pop();
                            return r;
                        }
                    }
                    // A duplicated item is owned as a whole, never field by field.
                    set.insert(path);
                    path.pop();
                }
            }
            _ => set.insert(path),
        }
        Ok(())
    }

    /// What differs from `old` to `new` (upstream `Compare`).
    pub(crate) fn compare(&self, old: &Value, new: &Value) -> Result<Comparison, String> {
        let mut out = Comparison::default();
        self.cmp_walk(
            Some(old),
            Some(new),
            &mut Vec::new(),
            &mut Vec::new(),
            &mut out,
        )?;
        Ok(out)
    }

    fn cmp_walk<'v>(
        &self,
        l: Option<&'v Value>,
        r: Option<&'v Value>,
        names: &mut Vec<&'v str>,
        path: &mut Path,
        out: &mut Comparison,
    ) -> Result<(), String> {
        let lk = l.map(|v| self.node(v, names));
        let rk = r.map(|v| self.node(v, names));
        let mut in_leaf = false;
        match (l, r) {
            (Some(lv), Some(rv)) if lk == rk => {
                if lk == Some(Node::Leaf) || (is_empty_container(lv) && is_empty_container(rv)) {
                    in_leaf = true;
                    if !values_equal(lv, rv) {
                        out.modified.insert(path);
                    }
                } else {
                    self.cmp_children(l, r, names, path, out)?;
                }
            }
            (Some(lv), Some(rv)) => {
                // The kind changed: the old value's children go, the new one's come.
                if lk == Some(Node::Leaf) || is_empty_container(lv) {
                    out.modified.insert(path);
                } else {
                    self.cmp_children(l, None, names, path, out)?;
                }
                if rk == Some(Node::Leaf) || is_empty_container(rv) {
                    out.modified.insert(path);
                }
                if rk != Some(Node::Leaf) && !is_empty_container(rv) {
                    self.cmp_children(None, r, names, path, out)?;
                }
                in_leaf = true;
            }
            (Some(v), None) | (None, Some(v)) => {
                if self.node(v, names) != Node::Leaf && !is_empty_container(v) {
                    self.cmp_children(l, r, names, path, out)?;
                }
            }
            (None, None) => in_leaf = true,
        }
        if !in_leaf {
            if l.is_none() {
                out.added.insert(path);
            } else if r.is_none() {
                out.removed.insert(path);
            }
        }
        Ok(())
    }

    /// Walks the children of two values of the same container kind (either may be absent).
    fn cmp_children<'v>(
        &self,
        l: Option<&'v Value>,
        r: Option<&'v Value>,
        names: &mut Vec<&'v str>,
        path: &mut Path,
        out: &mut Comparison,
    ) -> Result<(), String> {
        let is_map = matches!(l.or(r), Some(Value::Object(_)));
        if is_map {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            let mut keys: Vec<&'v String> = lm.map(|m| m.keys().collect()).unwrap_or_default();
            if let Some(rm) = rm {
                keys.extend(rm.keys().filter(|k| lm.is_none_or(|m| !m.contains_key(*k))));
            }
            for k in keys {
                names.push(k);
                path.push(PathElement::Field(k.clone()));
                let res = self.cmp_walk(
                    lm.and_then(|m| m.get(k)),
                    rm.and_then(|m| m.get(k)),
                    names,
                    path,
                    out,
                );
                path.pop();
                names.pop();
                res?;
            }
            return Ok(());
        }
        let litems: &'v [Value] = l.and_then(Value::as_array).map_or(&[], Vec::as_slice);
        let ritems: &'v [Value] = r.and_then(Value::as_array).map_or(&[], Vec::as_slice);
        let lpes = self.item_pes(names, path, litems, false)?;
        let rpes = self.item_pes(names, path, ritems, false)?;
        let mut order: Vec<&PathElement> = Vec::new();
        let mut lvals: BTreeMap<&PathElement, Vec<&'v Value>> = BTreeMap::new();
        for (pe, item) in lpes.iter().zip(litems) {
            let e = lvals.entry(pe).or_default();
            if e.is_empty() {
                order.push(pe);
            }
            e.push(item);
        }
        let mut rvals: BTreeMap<&PathElement, Vec<&'v Value>> = BTreeMap::new();
        for (pe, item) in rpes.iter().zip(ritems) {
            let e = rvals.entry(pe).or_default();
            if e.is_empty() && !lvals.contains_key(pe) {
                order.push(pe);
            }
            e.push(item);
        }
        for pe in order {
            let ll = lvals.get(pe).map_or(&[][..], Vec::as_slice);
            let rl = rvals.get(pe).map_or(&[][..], Vec::as_slice);
            path.push(pe.clone());
            let walked = match (ll.len(), rl.len()) {
                (0..=1, 0..=1) => {
                    self.cmp_walk(ll.first().copied(), rl.first().copied(), names, path, out)
                }
                (2.., 2..) => {
                    let same =
                        ll.len() == rl.len() && ll.iter().zip(rl).all(|(a, b)| values_equal(a, b));
                    if !same {
                        out.modified.insert(path);
                    }
                    Ok(())
                }
                (2.., _) => {
                    let walked = match rl.first() {
                        Some(rv) => self.cmp_walk(None, Some(rv), names, path, out),
                        None => Ok(()),
                    };
                    out.removed.insert(path);
                    walked
                }
                (_, _) => {
                    let walked = match ll.first() {
                        Some(lv) => self.cmp_walk(Some(lv), None, names, path, out),
                        None => Ok(()),
                    };
                    out.added.insert(path);
                    walked
                }
            };
            path.pop();
            walked?;
        }
        Ok(())
    }

    /// Merges an apply configuration into the live object (upstream `Merge`): the
    /// configuration wins on leaves, objects merge field by field, granular lists merge
    /// item by item (by key or value), in the order upstream produces.
    pub(crate) fn merge(&self, live: &Value, config: &Value) -> Result<Value, String> {
        let merged = self.merge_walk(Some(live), Some(config), &mut Vec::new(), &mut Vec::new())?;
        Ok(merged.unwrap_or_else(|| Value::Object(Map::new())))
    }

    fn merge_walk<'v>(
        &self,
        l: Option<&'v Value>,
        r: Option<&'v Value>,
        names: &mut Vec<&'v str>,
        path: &mut Path,
    ) -> Result<Option<Value>, String> {
        let (lv, rv) = match (l, r) {
            (_, None) => return Ok(l.cloned()),
            (None, Some(rv)) => return Ok(Some(rv.clone())),
            (Some(lv), Some(rv)) => (lv, rv),
        };
        let lk = self.node(lv, names);
        if lk != self.node(rv, names)
            || lk == Node::Leaf
            || (is_empty_container(lv) && is_empty_container(rv))
        {
            return Ok(Some(rv.clone()));
        }
        match (lv, rv) {
            (Value::Object(lm), Value::Object(rm)) => {
                let mut out = Map::new();
                for (k, lchild) in lm {
                    names.push(k);
                    path.push(PathElement::Field(k.clone()));
                    let res = match rm.get(k) {
                        // A null in the configuration clears the field (built-in types
                        // decode null as absent); the applier still owns it.
                        Some(Value::Null) => Ok(None),
                        rchild => self.merge_walk(Some(lchild), rchild, names, path),
                    };
                    path.pop();
                    names.pop();
                    if let Some(v) = res? {
                        out.insert(k.clone(), v);
                    }
                }
                for (k, rchild) in rm {
                    if !lm.contains_key(k) && !rchild.is_null() {
                        out.insert(k.clone(), rchild.clone());
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            (Value::Array(litems), Value::Array(ritems)) => {
                let out = self.merge_list(litems, ritems, names, path)?;
                Ok(Some(Value::Array(out)))
            }
            _ => Ok(Some(rv.clone())),
        }
    }

    /// Upstream's associative-list merge order: live items stay where they are, the
    /// configuration's items keep their relative order, and new items are inserted after
    /// the shared item that precedes them in the configuration.
    fn merge_list<'v>(
        &self,
        litems: &'v [Value],
        ritems: &'v [Value],
        names: &mut Vec<&'v str>,
        path: &mut Path,
    ) -> Result<Vec<Value>, String> {
        let rpes = self.item_pes(names, path, ritems, true)?;
        let lpes = self.item_pes(names, path, litems, false)?;
        // Live value per element; None when the live list holds it more than once.
        let mut lobs: BTreeMap<&PathElement, Option<&'v Value>> = BTreeMap::new();
        for (pe, item) in lpes.iter().zip(litems) {
            lobs.entry(pe)
                .and_modify(|v| *v = None)
                .or_insert(Some(item));
        }
        let robs: BTreeMap<&PathElement, &'v Value> = rpes.iter().zip(ritems).collect();
        let mut shared = rpes.iter().filter(|pe| lobs.contains_key(pe));
        let mut next_shared = shared.next();
        let mut emitted: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(litems.len().max(ritems.len()));
        let (ln, rn) = (lpes.len(), rpes.len());
        let (mut li, mut ri) = (0, 0);
        while li < ln || ri < rn {
            if li < ln && ri < rn {
                let pe = &lpes[li];
                if *pe == rpes[ri] {
                    emitted.insert(pe);
                    let l = lobs.get(pe).copied().flatten();
                    self.push_item(&mut out, pe, l, robs.get(pe).copied(), names, path)?;
                    li += 1;
                    ri += 1;
                    next_shared = shared.next();
                    continue;
                }
                if robs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < ln {
                let pe = &lpes[li];
                if !robs.contains_key(pe) {
                    out.push(litems[li].clone());
                    li += 1;
                    continue;
                } else if emitted.contains(pe) {
                    li += 1;
                }
            }
            if ri < rn {
                let pe = &rpes[ri];
                emitted.insert(pe);
                let l = lobs.get(pe).copied().flatten();
                self.push_item(&mut out, pe, l, robs.get(pe).copied(), names, path)?;
                ri += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.next();
                }
            }
        }
        Ok(out)
    }

    fn push_item<'v>(
        &self,
        out: &mut Vec<Value>,
        pe: &PathElement,
        l: Option<&'v Value>,
        r: Option<&'v Value>,
        names: &mut Vec<&'v str>,
        path: &mut Path,
    ) -> Result<(), String> {
        path.push(pe.clone());
        let res = self.merge_walk(l, r, names, path);
        path.pop();
        if let Some(v) = res? {
            out.push(v);
        }
        Ok(())
    }

    /// Removes from `v` every node that is a member of `remove` and not of `keep` (both
    /// with named-field parents made members), as upstream's prune + add-back steps do.
    /// An object or list emptied by removals goes too (built-in types decode it as absent).
    pub(crate) fn prune(&self, v: &Value, remove: &Set, keep: &Set) -> Value {
        self.prune_walk(v, remove, Some(keep), &mut Vec::new())
    }

    fn prune_walk<'v>(
        &self,
        v: &'v Value,
        remove: &Set,
        keep: Option<&Set>,
        names: &mut Vec<&'v str>,
    ) -> Value {
        match (self.node(v, names), v) {
            (Node::Map, Value::Object(map)) => {
                let mut out = Map::new();
                for (k, child) in map {
                    let pe = PathElement::Field(k.clone());
                    names.push(k);
                    if let Some(kept) = self.prune_child(child, &pe, remove, keep, names) {
                        out.insert(k.clone(), kept);
                    }
                    names.pop();
                }
                Value::Object(out)
            }
            (Node::List, Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Ok(pe) = self.item_pe(names, item) else {
                        out.push(item.clone());
                        continue;
                    };
                    if let Some(kept) = self.prune_child(item, &pe, remove, keep, names) {
                        out.push(kept);
                    }
                }
                Value::Array(out)
            }
            _ => v.clone(),
        }
    }

    fn prune_child<'v>(
        &self,
        child: &'v Value,
        pe: &PathElement,
        remove: &Set,
        keep: Option<&Set>,
        names: &mut Vec<&'v str>,
    ) -> Option<Value> {
        let kept = keep.is_some_and(|k| k.has_member(pe));
        if remove.has_member(pe) && !kept {
            return None;
        }
        let Some(sub) = remove.child(pe) else {
            return Some(child.clone());
        };
        let pruned = self.prune_walk(child, sub, keep.and_then(|k| k.child(pe)), names);
        if is_empty_container(&pruned) && !is_empty_container(child) {
            None
        } else {
            Some(pruned)
        }
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}
