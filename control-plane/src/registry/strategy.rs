//! What differs between kinds, in one trait: each kind's file under `kinds/` implements it,
//! as upstream's `rest.RESTCreateStrategy`/`RESTUpdateStrategy`/`RESTDeleteStrategy` and the
//! printers, field-label conversions and patch metadata do, so the verbs never ask which kind
//! they are writing.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_patch::ListStrategy;

use super::Subresource;
use super::printers::{age, s};
use crate::apiserver::status::Cause;

/// A body decoded through the typed Kubernetes struct.
#[derive(Debug)]
pub struct Canonical {
    /// The object as the typed struct re-encodes it: unknown fields are gone.
    pub value: Value,
    /// JSON paths of fields in the input that the type does not know.
    pub unknown_fields: Vec<String>,
}

/// How object names of a kind are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (Namespace).
    Label,
    /// RFC 1035 label (Service).
    Dns1035Label,
    /// Any path segment name (RBAC kinds, `PriorityClass`...: only `.`/`..`/`/`/`%` refused).
    PathSegment,
}

/// One `kubectl get` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `date`...
    pub ty: &'static str,
    /// 0 = default output, 1 = `-o wide`.
    pub priority: u8,
    /// Column description.
    pub description: String,
}

/// A column in the compact form the built-in kinds use.
#[must_use]
pub fn col(name: &str, ty: &'static str, priority: u8) -> Column {
    Column {
        name: name.to_string(),
        ty,
        priority,
        description: name.to_string(),
    }
}

/// Server settings validation may depend on.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext {
    /// The `NodePort` range.
    pub node_port_range: (u16, u16),
}

/// Per-kind behaviour. Every method but [`Strategy::canonical`] has the behaviour most kinds
/// share as its default, so a plain kind implements only its codec and its columns.
pub trait Strategy: Send + Sync + 'static {
    /// Decode through the typed struct: the canonical JSON and the fields it dropped.
    fn canonical(&self, input: &Value) -> Result<Canonical, String>;

    /// How names are validated.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// Whether a spec change bumps `metadata.generation`.
    fn uses_generation(&self) -> bool {
        false
    }

    /// Whether writes to the main resource keep the stored `.status` (kinds with a status
    /// subresource).
    fn has_status(&self) -> bool {
        false
    }

    /// Fields a create may not set (upstream's `PrepareForCreate`), before defaulting.
    fn prepare_create(&self, _obj: &mut Value) {}

    /// Upstream's defaulting functions.
    fn default(&self, _obj: &mut Value) {}

    /// Kind-specific validation of a defaulted object (metadata is validated by the caller).
    fn validate(&self, _obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        Vec::new()
    }

    /// Update rules beyond the generic ones: immutable fields.
    fn validate_update(&self, _old: &Value, _new: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Upstream's `PrepareForUpdate` of a write to the object itself (not a subresource):
    /// fields only a subresource may write are taken from `old` (a pod's
    /// `spec.ephemeralContainers`).
    fn prepare_update(&self, _old: &Value, _new: &mut Value) {}

    /// Update rules of a write through `sub`, beyond [`Strategy::validate_update`]
    /// (`pods/ephemeralcontainers`: existing ephemeral containers stay as they are).
    fn validate_subresource_update(
        &self,
        _sub: Subresource,
        _old: &Value,
        _new: &Value,
    ) -> Vec<Cause> {
        Vec::new()
    }

    /// Table columns.
    fn columns(&self) -> Vec<Column> {
        vec![col("Name", "string", 0), col("Age", "string", 0)]
    }

    /// One Table row, a cell per column.
    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            json!(s(&obj["metadata"]["name"])),
            json!(age(&obj["metadata"]["creationTimestamp"])),
        ]
    }

    /// Field selector paths accepted beyond `metadata.name` and `metadata.namespace`.
    fn field_selectors(&self) -> &'static [&'static str] {
        &[]
    }

    /// The value of a field label on `obj` (upstream's per-kind field label conversion); most
    /// kinds read it at its path.
    fn field_value(&self, obj: &Value, field: &str) -> String {
        crate::apiserver::selectors::field_value(obj, field)
    }

    /// Strategic merge patch list strategy of the list at `path`; `None` if strategic merge
    /// patch is not supported for this kind (custom resources answer 415, as upstream).
    fn list_strategy(&self, _path: &[&str]) -> Option<ListStrategy> {
        None
    }

    /// Seconds of graceful deletion for a DELETE of `obj` (`requested` from `DeleteOptions`);
    /// 0 deletes at once.
    fn deletion_grace(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Whether an object marked for deletion with no finalizers left must still wait (a
    /// namespace whose `spec.finalizers` are not done, a pod still inside its grace period).
    fn deletion_pending(&self, _obj: &Value) -> bool {
        false
    }

    /// Changes a DELETE makes besides `deletionTimestamp` (a namespace turns `Terminating`).
    fn mark_deleting(&self, _obj: &mut Value) {}

    /// Whether a DELETE of an object already being deleted may shorten its grace period
    /// (pods) rather than leave it alone.
    fn shortens_grace(&self) -> bool {
        false
    }

    /// `status.selector` of the Scale view: `spec.selector` as a label selector string (a
    /// `ReplicationController`'s map selector overrides this).
    fn scale_selector(&self, obj: &Value) -> String {
        crate::apiserver::selectors::LabelSelector::from_json(&obj["spec"]["selector"])
            .map(|s| s.render())
            .unwrap_or_default()
    }

    /// Where the scale subresource reads and writes replicas: field names from the root
    /// (`spec.replicas` and `status.replicas` for the built-ins; a custom resource's
    /// `specReplicasPath`/`statusReplicasPath`).
    fn scale_paths(&self) -> (Vec<String>, Vec<String>) {
        (
            vec!["spec".into(), "replicas".into()],
            vec!["status".into(), "replicas".into()],
        )
    }

    /// The `OpenAPI` v3 component schema of this resource when it is not a built-in
    /// (custom resources), with its name.
    fn openapi_schema(&self) -> Option<(String, Value)> {
        None
    }

    /// The stored form of this resource's objects (for resources sharing storage with another
    /// version or group).
    fn encode_stored(&self, obj: Value) -> Value {
        obj
    }

    /// This resource's form of a stored object.
    fn decode_stored(&self, obj: Value) -> Value {
        obj
    }
}

/// Decode through the typed struct `T`, re-encode, and report the input fields `T` dropped.
pub fn typed<T: DeserializeOwned + Serialize>(input: &Value) -> Result<Canonical, String> {
    let typed: T = serde_json::from_value(input.clone()).map_err(|e| e.to_string())?;
    let value = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown_fields = Vec::new();
    dropped_fields(input, &value, "", &mut unknown_fields);
    Ok(Canonical {
        value,
        unknown_fields,
    })
}

/// Paths present (non-null) in `input` but missing from `kept`.
fn dropped_fields(input: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (input, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(kv) => dropped_fields(v, kv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                dropped_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}
