//! Field paths and field sets, and their `FieldsV1` wire form.
//!
//! The model follows structured-merge-diff's `fieldpath` package: a path is a list of
//! [`PathElement`]s; a [`Set`] holds *members* (paths owned as a whole) and *children*
//! (sub-sets under one element). A node that is both a member and has children is written
//! `".": {}` in `FieldsV1`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};
use sluice_k8s_values::{gofmt, gojson};

/// One step of a field path.
#[derive(Clone, Debug)]
pub(crate) enum PathElement {
    /// `f:<name>`: a field of an object.
    Field(String),
    /// `k:{...}`: the item of a map-list whose key fields have these values, sorted by name.
    Key(Vec<(String, Value)>),
    /// `v:<json>`: the item of a set-list with this value.
    Value(Value),
    /// `i:<n>`: a positional item (only ever read from existing managedFields).
    Index(usize),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            Self::Field(_) => 0,
            Self::Key(_) => 1,
            Self::Value(_) => 2,
            Self::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key of this element (`f:name`, `k:{"name":"web"}`, `v:"x"`, `i:0`).
    pub(crate) fn serialize(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(fields) => {
                let mut out = String::from("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    gojson::write_string(&mut out, name);
                    out.push(':');
                    gojson::write(&mut out, value);
                }
                out.push('}');
                out
            }
            Self::Value(value) => {
                let mut out = String::from("v:");
                gojson::write(&mut out, value);
                out
            }
            Self::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key. `Ok(None)` for an unknown element type, which upstream
    /// drops silently (a future version may know it).
    pub(crate) fn deserialize(s: &str) -> Result<Option<Self>, String> {
        let bytes = s.as_bytes();
        if bytes.len() < 2 {
            return Err(format!("key must be 2 characters long: {s:?}"));
        }
        if bytes[1] != b':' {
            return Err(format!("missing colon: {s}"));
        }
        let rest = &s[2..];
        match bytes[0] {
            b'f' => Ok(Some(Self::Field(rest.to_owned()))),
            b'v' => serde_json::from_str::<Value>(rest)
                .map(|v| Some(Self::Value(v)))
                .map_err(|e| format!("parsing {s:?}: {e}")),
            b'k' => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => {
                    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Some(Self::Key(fields)))
                }
                Ok(_) => Err(format!("key element is not an object: {s}")),
                Err(e) => Err(format!("parsing {s:?}: {e}")),
            },
            b'i' => rest
                .parse::<usize>()
                .map(|i| Some(Self::Index(i)))
                .map_err(|e| format!("parsing {s:?}: {e}")),
            _ => Ok(None),
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Field(a), Self::Field(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Self::Key(a), Self::Key(b)) => compare_field_lists(a, b),
            (Self::Value(a), Self::Value(b)) => compare_values(a, b),
            (Self::Index(a), Self::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl std::fmt::Display for PathElement {
    /// Upstream's `PathElement.String()`: `.name`, `[name="web"]`, `[="x"]`, `[0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_to_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            Self::Value(v) => write!(f, "[={}]", value_to_string(v)),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A field path from the object root.
pub(crate) type Path = Vec<PathElement>;

/// Upstream's `Path.String()`: `.spec.containers[name="web"].image`.
pub(crate) fn path_to_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Set {
    members: BTreeSet<PathElement>,
    /// Never holds an empty set.
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => {
                self.children.entry(first.clone()).or_default().insert(rest);
            }
        }
    }

    /// Whether `path` is a member (upstream: nobody owns the whole object, so `[]` is not).
    pub(crate) fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The sub-set under `pe` (upstream `WithPrefix`).
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe)
    }

    pub(crate) fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, set) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(set),
                None => set.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub(crate) fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, set) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = set.intersection(theirs);
                if !both.is_empty() {
                    children.insert(pe.clone(), both);
                }
            }
        }
        Set { members, children }
    }

    /// Upstream `Difference`: leaf-wise; a member of `other` does not remove `self`'s
    /// children under it (parent − child = parent, child − parent = child).
    pub(crate) fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, set) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => set.difference(theirs),
                None => set.clone(),
            };
            if !rest.is_empty() {
                children.insert(pe.clone(), rest);
            }
        }
        Set { members, children }
    }

    /// Upstream `RecursiveDifference`: a member of `other` removes that node and everything
    /// under it.
    pub(crate) fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, set) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let rest = match other.children.get(pe) {
                Some(theirs) => set.recursive_difference(theirs),
                None => set.clone(),
            };
            if !rest.is_empty() {
                children.insert(pe.clone(), rest);
            }
        }
        Set { members, children }
    }

    /// Upstream `EnsureNamedFieldsAreMembers`, with every object field taken as a named
    /// (struct) field: a field with owned children is itself a member.
    pub(crate) fn with_field_parents(&self) -> Set {
        let mut members = self.members.clone();
        let mut children = BTreeMap::new();
        for (pe, set) in &self.children {
            if matches!(pe, PathElement::Field(_)) {
                members.insert(pe.clone());
            }
            children.insert(pe.clone(), set.with_field_parents());
        }
        Set { members, children }
    }

    /// Every member path, in upstream's iteration order (a level's members, then its
    /// children depth-first).
    pub(crate) fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, set) in &self.children {
            prefix.push(pe.clone());
            set.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` object.
    pub(crate) fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        // Members and children merged in element order, as upstream writes them.
        let mut keys: BTreeSet<&PathElement> = self.members.iter().collect();
        keys.extend(self.children.keys());
        for pe in keys {
            let body = match self.children.get(pe) {
                Some(set) => set.emit(self.members.contains(pe)),
                None => Map::new(),
            };
            out.insert(pe.serialize(), Value::Object(body));
        }
        out
    }

    /// Parses a `FieldsV1` object.
    pub(crate) fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(map) = v else {
            return Err("fieldsV1 must be an object".to_owned());
        };
        let (set, _) = Self::read(map)?;
        Ok(set.unwrap_or_default())
    }

    /// Returns the children set (None when there are none) and whether the node itself is
    /// a member (an empty object, or one holding `"."`).
    fn read(map: &Map<String, Value>) -> Result<(Option<Set>, bool), String> {
        let mut children: Option<Set> = None;
        let mut is_member = false;
        for (key, body) in map {
            if key == "." {
                is_member = true;
                continue;
            }
            let Some(pe) = PathElement::deserialize(key)? else {
                continue;
            };
            let Value::Object(inner) = body else {
                return Err(format!("value of {key:?} must be an object"));
            };
            let (grandchildren, child_is_member) = Self::read(inner)?;
            if child_is_member {
                children
                    .get_or_insert_with(Set::new)
                    .members
                    .insert(pe.clone());
            }
            if let Some(g) = grandchildren {
                let c = children.get_or_insert_with(Set::new);
                let merged = match c.children.get(&pe) {
                    Some(existing) => existing.union(&g),
                    None => g,
                };
                c.children.insert(pe, merged);
            }
        }
        if children.is_none() {
            is_member = true;
        }
        Ok((children, is_member))
    }
}

/// Builds a set of plain field paths (`[["status"], ["metadata", "labels"]]`).
pub(crate) fn set_of_field_paths<S: AsRef<str>>(paths: &[Vec<S>]) -> Set {
    let mut set = Set::new();
    for p in paths {
        let path: Path = p
            .iter()
            .map(|s| PathElement::Field(s.as_ref().to_owned()))
            .collect();
        set.insert(&path);
    }
    set
}

fn compare_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        let c = ka.as_bytes().cmp(kb.as_bytes());
        if c != Ordering::Equal {
            return c;
        }
        let c = compare_values(va, vb);
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

fn is_float(n: &serde_json::Number) -> bool {
    !n.is_i64() && !n.is_u64()
}

fn num_f64(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

fn value_rank(v: &Value) -> u8 {
    match v {
        Value::Number(n) if is_float(n) => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Bool(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
        Value::Null => 6,
    }
}

/// Upstream's total order over values: floats, ints (compared numerically with floats),
/// strings, bools, lists, maps, null.
pub(crate) fn compare_values(lhs: &Value, rhs: &Value) -> Ordering {
    match (lhs, rhs) {
        (Value::Number(l), Value::Number(r)) => compare_numbers(l, r),
        (Value::String(l), Value::String(r)) => l.as_bytes().cmp(r.as_bytes()),
        (Value::Bool(l), Value::Bool(r)) => l.cmp(r),
        (Value::Array(l), Value::Array(r)) => compare_lists(l, r),
        (Value::Object(l), Value::Object(r)) => compare_maps(l, r),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => value_rank(lhs).cmp(&value_rank(rhs)),
    }
}

fn compare_numbers(lhs: &serde_json::Number, rhs: &serde_json::Number) -> Ordering {
    if is_float(lhs) || is_float(rhs) {
        return num_f64(lhs).total_cmp(&num_f64(rhs));
    }
    if let (Some(l), Some(r)) = (lhs.as_i64(), rhs.as_i64()) {
        return l.cmp(&r);
    }
    // At least one is beyond i64: u64 order (negatives are below them).
    match (lhs.as_u64(), rhs.as_u64()) {
        (Some(l), Some(r)) => l.cmp(&r),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn compare_lists(lhs: &[Value], rhs: &[Value]) -> Ordering {
    for (l, r) in lhs.iter().zip(rhs) {
        let c = compare_values(l, r);
        if c != Ordering::Equal {
            return c;
        }
    }
    lhs.len().cmp(&rhs.len())
}

fn compare_maps(lhs: &Map<String, Value>, rhs: &Map<String, Value>) -> Ordering {
    let mut lkeys: Vec<&String> = lhs.keys().collect();
    let mut rkeys: Vec<&String> = rhs.keys().collect();
    lkeys.sort();
    rkeys.sort();
    for (lk, rk) in lkeys.iter().zip(&rkeys) {
        let c = lk
            .as_bytes()
            .cmp(rk.as_bytes())
            .then_with(|| compare_values(&lhs[lk.as_str()], &rhs[rk.as_str()]));
        if c != Ordering::Equal {
            return c;
        }
    }
    lkeys.len().cmp(&rkeys.len())
}

/// Deep equality with upstream's numeric rule (an int equals the float of the same value)
/// and without regard to object key order.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

/// Upstream's `value.ToString`, used in conflict paths.
pub(crate) fn value_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Number(n) => gofmt::number(n),
        Value::String(s) => gofmt::quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = String::new();
            for k in keys {
                let _ = write!(out, "{k}={}", value_to_string(&map[k.as_str()]));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests;
