//! `metadata.managedFields`: decoding, encoding, manager identity, sorting and capping,
//! as `k8s.io/apimachinery/pkg/util/managedfields/internal` does it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use sluice_k8s_values::gofmt::quote;
use sluice_k8s_values::gojson;

use crate::fieldpath::Set;

/// The operation of a managedFields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// Who owns a field set: upstream's manager identifier (the entry without time, fields,
/// and, for Apply, without apiVersion). Apply entries are one per (manager, subresource),
/// Update entries one per (manager, apiVersion, subresource).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ManagerId {
    pub(crate) manager: String,
    pub(crate) operation: Operation,
    /// Empty for Apply.
    pub(crate) api_version: String,
    /// Empty for the main resource.
    pub(crate) subresource: String,
}

impl ManagerId {
    pub(crate) fn new(
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: Option<&str>,
    ) -> Self {
        Self {
            manager: manager.to_owned(),
            operation,
            api_version: if operation == Operation::Apply {
                String::new()
            } else {
                api_version.to_owned()
            },
            subresource: subresource.unwrap_or_default().to_owned(),
        }
    }

    /// The identifier string upstream keys managers by (`json.Marshal` of the stripped
    /// entry); conflicts and capping sort by it.
    pub(crate) fn identifier(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        let mut field = |out: &mut String, name: &str, value: &str| {
            if value.is_empty() {
                return;
            }
            if !first {
                out.push(',');
            }
            first = false;
            gojson::write_string(out, name);
            out.push(':');
            gojson::write_string(out, value);
        };
        field(&mut out, "manager", &self.manager);
        field(&mut out, "operation", self.operation.as_str());
        field(&mut out, "apiVersion", &self.api_version);
        field(&mut out, "subresource", &self.subresource);
        out.push('}');
        out
    }

    /// Upstream `printManager`: `"m"`, `"m" with subresource "status"`, and for Update
    /// ` using apps/v1`.
    pub(crate) fn print(&self) -> String {
        let mut s = quote(&self.manager);
        if !self.subresource.is_empty() {
            s.push_str(" with subresource ");
            s.push_str(&quote(&self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(" using ");
            s.push_str(&self.api_version);
        }
        s
    }
}

/// One manager's fields.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) set: Set,
    pub(crate) api_version: String,
    pub(crate) time: Option<String>,
}

/// Every manager's fields.
pub(crate) type Managed = BTreeMap<ManagerId, Entry>;

fn str_field<'a>(entry: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match entry.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// Decodes `metadata.managedFields` (absent or null is empty).
pub(crate) fn decode(mf: Option<&Value>) -> Result<Managed, String> {
    let items = match mf {
        None | Some(Value::Null) => return Ok(Managed::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("managedFields must be a list".to_owned()),
    };
    let mut out = Managed::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(entry) = item else {
            return Err(format!("managed fields entry {i} must be an object"));
        };
        let operation = match str_field(entry, "operation")? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".to_owned()),
        };
        let api_version = str_field(entry, "apiVersion")?;
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".to_owned());
        }
        match str_field(entry, "fieldsType")? {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {} in managed fields entry {i}",
                    quote(other)
                ));
            }
        }
        let set = match entry.get("fieldsV1") {
            None | Some(Value::Null) => Set::new(),
            Some(v) => Set::from_fields_v1(v)
                .map_err(|e| format!("error decoding set of entry {i}: {e}"))?,
        };
        let time = match str_field(entry, "time")? {
            "" => None,
            t => Some(t.to_owned()),
        };
        let subresource = str_field(entry, "subresource")?;
        let id = ManagerId::new(
            str_field(entry, "manager")?,
            operation,
            api_version,
            (!subresource.is_empty()).then_some(subresource),
        );
        out.insert(
            id,
            Entry {
                set,
                api_version: api_version.to_owned(),
                time,
            },
        );
    }
    Ok(out)
}

/// Whether a request's managedFields asks for a reset: `[]`, or one all-empty entry.
pub(crate) fn is_reset(mf: Option<&Value>) -> bool {
    match mf {
        Some(Value::Array(items)) => match items.as_slice() {
            [] => true,
            [Value::Object(entry)] => entry.values().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Seconds part of an RFC 3339 time, for ordering (upstream compares Unix seconds).
fn seconds(t: Option<&String>) -> &str {
    t.map_or("", |t| t.get(..19).unwrap_or(t))
}

/// Encodes managers as the wire list, sorted as upstream sorts it (operation, time,
/// manager, apiVersion, subresource). `None` when there are none.
pub(crate) fn encode(managed: &Managed) -> Option<Value> {
    if managed.is_empty() {
        return None;
    }
    let mut entries: Vec<(&ManagerId, &Entry)> = managed.iter().collect();
    entries.sort_by(|(pi, pe), (qi, qe)| {
        pi.operation
            .as_str()
            .cmp(qi.operation.as_str())
            .then_with(|| seconds(pe.time.as_ref()).cmp(seconds(qe.time.as_ref())))
            .then_with(|| pi.manager.cmp(&qi.manager))
            .then_with(|| pe.api_version.cmp(&qe.api_version))
            .then_with(|| pi.subresource.cmp(&qi.subresource))
    });
    let list = entries
        .into_iter()
        .map(|(id, e)| {
            let mut m = Map::new();
            if !id.manager.is_empty() {
                m.insert("manager".into(), Value::String(id.manager.clone()));
            }
            m.insert("operation".into(), id.operation.as_str().into());
            m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
            if let Some(t) = &e.time {
                m.insert("time".into(), Value::String(t.clone()));
            }
            m.insert("fieldsType".into(), "FieldsV1".into());
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !id.subresource.is_empty() {
                m.insert("subresource".into(), Value::String(id.subresource.clone()));
            }
            Value::Object(m)
        })
        .collect();
    Some(Value::Array(list))
}

/// At most this many Update entries are kept (upstream `DefaultMaxUpdateManagers`).
pub(crate) const MAX_UPDATE_MANAGERS: usize = 10;

/// Folds the oldest Update entries, per apiVersion, into an `ancient-changes` entry until
/// at most [`MAX_UPDATE_MANAGERS`] remain (upstream `capManagersManager`).
pub(crate) fn cap_update_managers(managed: &mut Managed) {
    let mut updaters: Vec<ManagerId> = managed
        .keys()
        .filter(|id| id.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|a, b| {
        let ta = seconds(managed[a].time.as_ref());
        let tb = seconds(managed[b].time.as_ref());
        ta.cmp(tb).then_with(|| a.identifier().cmp(&b.identifier()))
    });
    let mut first_per_version: BTreeMap<String, ManagerId> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managed.get(&id).cloned() else {
            continue;
        };
        let version = entry.api_version.clone();
        let bucket = ManagerId::new("ancient-changes", Operation::Update, &version, None);
        if let Some(first) = first_per_version.get(&version) {
            if !managed.contains_key(&bucket)
                && let Some(moved) = managed.remove(first)
            {
                managed.insert(bucket.clone(), moved);
            }
            let base = managed
                .get(&bucket)
                .map(|b| b.set.clone())
                .unwrap_or_default();
            managed.remove(&id);
            managed.insert(
                bucket,
                Entry {
                    set: entry.set.union(&base),
                    api_version: version,
                    time: entry.time,
                },
            );
            length -= 1;
        } else {
            first_per_version.insert(version, id);
        }
    }
}
