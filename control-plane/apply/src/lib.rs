//! Server-side apply: managed fields, apply merge, conflicts, pruning.
//!
//! A pure library over [`serde_json::Value`], modelled on upstream's
//! `sigs.k8s.io/structured-merge-diff` (field sets, merge, compare, remove) and
//! `k8s.io/apimachinery/pkg/util/managedfields` (the field manager the API server wraps
//! around every write). The API server calls:
//!
//! - [`apply`] for `PATCH` with `application/apply-patch+yaml` (`kubectl apply
//!   --server-side`, `fieldManager=`, `force=` for `--force-conflicts`);
//! - [`update`] after every other write (create, update, JSON/merge/strategic patch) to
//!   record an `Update` entry for the fields that write changed;
//! - [`manager_from_user_agent`] for the default manager of a write that named none.
//!
//! Lists are granular or atomic as a [`Schema`] says: a map-list (`containers`, keyed by
//! `name`) merges item by item and is tracked as `k:{"name":"web"}`; a set-list
//! (`finalizers`) as `v:"x"`; an atomic list is owned whole.
//!
//! ```
//! use serde_json::json;
//! use sluice_apply::{apply, ApplyError, ListType, Schema};
//!
//! struct Deployments;
//! impl Schema for Deployments {
//!     fn list_type(&self, path: &[&str]) -> ListType {
//!         match path {
//!             [.., "containers"] => ListType::Map(vec!["name".into()]),
//!             _ => ListType::Atomic,
//!         }
//!     }
//! }
//!
//! let config = |replicas: i64| json!({
//!     "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
//!     "spec": {"replicas": replicas},
//! });
//! let now = "2025-01-01T00:00:00Z";
//! let live = apply(None, &config(3), "a", "apps/v1", None, false, &Deployments, now).unwrap();
//! assert_eq!(live["metadata"]["managedFields"][0]["fieldsV1"],
//!            json!({"f:spec": {"f:replicas": {}}}));
//!
//! // Another manager setting a different value conflicts...
//! let err = apply(Some(&live), &config(5), "b", "apps/v1", None, false, &Deployments, now)
//!     .unwrap_err();
//! assert_eq!(err.to_string(), r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#);
//! assert!(matches!(err, ApplyError::Conflicts(ref c) if c[0].field == ".spec.replicas"));
//!
//! // ...unless it forces, taking the field away from "a" (left with no fields, so dropped).
//! let live = apply(Some(&live), &config(5), "b", "apps/v1", None, true, &Deployments, now)
//!     .unwrap();
//! assert_eq!(live["spec"]["replicas"], 5);
//! assert_eq!(live["metadata"]["managedFields"].as_array().unwrap().len(), 1);
//! ```
//!
//! # What is tracked
//!
//! As upstream's `stripMetaManager`, a manager never owns `apiVersion`, `kind`, `metadata`
//! itself, `metadata.name`, `namespace`, `creationTimestamp`, `selfLink`, `uid`,
//! `clusterName`, `generation`, `managedFields` or `resourceVersion` (labels, annotations,
//! finalizers, ownerReferences are tracked). [`Schema::reset_fields`] adds the
//! strategy's reset fields (`status` for the main resource; `spec` and `metadata.labels`
//! for `status`): they are ignored for ownership and conflicts alike.
//!
//! # Known differences from upstream
//!
//! - No `OpenAPI` schema: every object is taken as a struct, so a field of a *map* whose
//!   values are objects is owned field by field like a struct's; upstream also marks the
//!   map key itself. Atomic maps (`selector`) must be named by [`Schema::is_atomic_map`].
//! - Map-list keys come from [`Schema::list_type`]; upstream's SSA keys differ from the
//!   strategic-merge-patch keys in places: container `ports` are keyed by
//!   `[containerPort, protocol]` (protocol defaulting to `TCP`, see
//!   [`Schema::key_default`]), a Service's `ports` by `[port, protocol]`,
//!   `volumeMounts` by `mountPath`, `env` by `name`, `imagePullSecrets` by `name`,
//!   `tolerations` and `args`/`command` are atomic.
//! - Whether an object added by an [`update`] is itself a member (`".": {}`) depends on
//!   upstream's Go types (non-pointer structs always exist); [`Schema::always_present`]
//!   approximates it.
//! - A `null` in an apply configuration removes the field (as built-in types decode it);
//!   upstream keeps an explicit null only for custom resources.
//! - No version conversion: managers whose entries carry another apiVersion are compared
//!   on this version's object.
//! - Times compare by their first 19 characters (`YYYY-MM-DDTHH:MM:SS`), as upstream
//!   compares seconds; pass `now` in UTC RFC 3339.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod fieldpath;
mod managed;
mod typed;

use serde_json::{Map, Value};
use sluice_k8s_values::gojson;

use crate::fieldpath::{Path, PathElement, Set, path_to_string, set_of_field_paths};
use crate::managed::{Entry, Managed, ManagerId, Operation};
use crate::typed::Typed;

/// How the items of a list merge and are owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced and owned as a whole (`x-kubernetes-list-type: atomic`).
    Atomic,
    /// A set of scalars, each owned alone (`x-kubernetes-list-type: set`).
    Set,
    /// Objects identified by these key fields (`x-kubernetes-list-type: map`).
    Map(Vec<String>),
}

/// Field names [`Schema::always_present`] names by default.
const ALWAYS_PRESENT: &[&str] = &[
    "spec",
    "status",
    "template",
    "metadata",
    "strategy",
    "updateStrategy",
    "jobTemplate",
    "resources",
    "containers",
];

/// The shape of one kind, as server-side apply needs it.
///
/// `path` is the field names from the object root, list indexes elided:
/// `["spec", "template", "spec", "containers", "ports"]`.
pub trait Schema {
    /// The list type at `path` (upstream default: atomic).
    fn list_type(&self, path: &[&str]) -> ListType;

    /// Whether the object at `path` is atomic (replaced and owned whole), like
    /// `LabelSelector` (`spec.selector`).
    fn is_atomic_map(&self, _path: &[&str]) -> bool {
        false
    }

    /// The default of a map-list key field the item omits, like `protocol: TCP` for
    /// container ports keyed by `[containerPort, protocol]`.
    fn key_default(&self, _path: &[&str], _key: &str) -> Option<Value> {
        None
    }

    /// Whether the field at `path` is in its Go type's zero value whenever its parent is
    /// (a non-pointer struct, or a slice without `omitempty` such as `containers`, which
    /// upstream's typed objects hold as `null`): an [`update`] that adds fields under it
    /// then does not own the field itself (no `".": {}`). The default names `spec`,
    /// `status`, `template`, `metadata`, `strategy`, `updateStrategy`, `jobTemplate`,
    /// `resources` and `containers` at any depth.
    fn always_present(&self, path: &[&str]) -> bool {
        path.last()
            .is_some_and(|last| ALWAYS_PRESENT.contains(last))
    }

    /// The strategy's reset fields for a write to `subresource`, never tracked
    /// (upstream `GetResetFields`). The default: `status` for the main resource;
    /// `spec` and `metadata.labels` for `status` (as Deployments); nothing otherwise.
    /// Kinds without a status subresource should return nothing for the main resource.
    fn reset_fields(&self, subresource: Option<&str>) -> Vec<Vec<String>> {
        match subresource {
            None => vec![vec!["status".to_owned()]],
            Some("status") => vec![
                vec!["spec".to_owned()],
                vec!["metadata".to_owned(), "labels".to_owned()],
            ],
            Some(_) => Vec::new(),
        }
    }
}

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The field as upstream prints it: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="web"].image`, `.metadata.finalizers[="x"]`.
    pub field: String,
    /// The `FieldManagerConflict` status cause message: `conflict with "m" using apps/v1`
    /// for an Update manager, `conflict with "m"` for an applier,
    /// `conflict with "m" with subresource "status" using v1` for a subresource.
    pub message: String,
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields this configuration sets to different values (a 409
    /// `Conflict` with one `FieldManagerConflict` cause per entry).
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration or the live object is malformed (a 400 `BadRequest`).
    #[error("{0}")]
    Invalid(String),
}

/// Upstream's `getConflictMessage`.
fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: {}: {}",
            only.message, only.field
        );
    }
    let mut lines: Vec<String> = Vec::new();
    let mut current: Option<&str> = None;
    for c in conflicts {
        if current != Some(c.message.as_str()) {
            let who = c
                .message
                .strip_prefix("conflict with ")
                .unwrap_or(&c.message);
            lines.push(format!("conflicts with {who}:"));
            current = Some(&c.message);
        }
        lines.push(format!("- {}", c.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The manager name kubectl's server-side apply migration looks for.
const KUBECTL: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// Longest field manager name upstream accepts (`FieldManagerMaxLength`).
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// Fields no manager owns (upstream `stripMetaManager`).
fn strip_set() -> Set {
    let mut paths: Vec<Vec<&str>> = vec![vec!["apiVersion"], vec!["kind"], vec!["metadata"]];
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        paths.push(vec!["metadata", f]);
    }
    set_of_field_paths(&paths)
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata").and_then(|m| m.get("managedFields"))
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("managedFields");
    }
    out
}

/// Writes `managed` into `obj.metadata.managedFields` (removing it when empty).
fn set_managed_fields(obj: &mut Value, managed: &Managed) {
    let Value::Object(root) = obj else { return };
    let encoded = managed::encode(managed);
    match (root.get_mut("metadata"), encoded) {
        (Some(Value::Object(meta)), Some(list)) => {
            meta.insert("managedFields".to_owned(), list);
        }
        (Some(Value::Object(meta)), None) => {
            meta.remove("managedFields");
        }
        (None, Some(list)) => {
            let mut meta = Map::new();
            meta.insert("managedFields".to_owned(), list);
            root.insert("metadata".to_owned(), Value::Object(meta));
        }
        _ => {}
    }
}

/// Records an Update by `id` from `old` to `new` (both without managedFields): upstream's
/// structured `Update` under a temporary manager, then `managedFieldsUpdater` folding it
/// into `id`'s entry.
#[expect(
    clippy::too_many_arguments,
    reason = "two call sites; the inputs of upstream's Updater.Update"
)]
fn record_update(
    typed: &Typed<'_>,
    old: &Value,
    new: &Value,
    managed: &mut Managed,
    id: &ManagerId,
    api_version: &str,
    reset: &Set,
    now: &str,
) -> Result<(), String> {
    let cmp = typed.compare(old, new)?.exclude(reset);
    let changed = cmp.modified.union(&cmp.added);
    for entry in managed.values_mut() {
        entry.set = entry.set.difference(&changed).difference(&cmp.removed);
    }
    managed.retain(|_, e| !e.set.is_empty());
    let own = drop_added_structs(typed, &changed, old, new).difference(&strip_set());
    if own.is_empty() {
        return Ok(());
    }
    let set = match managed.get(id) {
        Some(prev) => prev.set.union(&own),
        None => own,
    };
    managed.insert(
        id.clone(),
        Entry {
            set,
            api_version: api_version.to_owned(),
            time: Some(now.to_owned()),
        },
    );
    Ok(())
}

/// Removes the members of fields upstream would have found present already
/// ([`Schema::always_present`] under a parent that existed), keeping their children.
fn drop_added_structs(typed: &Typed<'_>, set: &Set, old: &Value, new: &Value) -> Set {
    let mut structs = Set::new();
    let mut walk = StructWalk {
        typed,
        names: Vec::new(),
        path: Vec::new(),
        out: &mut structs,
    };
    walk.visit(Some(old), new, true, set);
    set.difference(&structs)
}

struct StructWalk<'a, 't, 'v> {
    typed: &'a Typed<'t>,
    names: Vec<&'v str>,
    path: Path,
    out: &'a mut Set,
}

impl<'v> StructWalk<'_, '_, 'v> {
    /// `present`: whether upstream would see `new`'s node in the old object.
    fn visit(&mut self, old: Option<&'v Value>, new: &'v Value, present: bool, within: &Set) {
        let Value::Object(map) = new else { return };
        for (k, child) in map {
            let pe = PathElement::Field(k.clone());
            let Some(sub) = within.child(&pe) else {
                continue;
            };
            let old_child = old.and_then(|o| o.get(k));
            self.names.push(k);
            self.path.push(pe);
            let exempt = present
                && (child.is_object() || child.is_array())
                && self.typed.schema.always_present(&self.names);
            if exempt {
                self.out.insert(&self.path);
            }
            self.visit(old_child, child, exempt || old_child.is_some(), sub);
            self.path.pop();
            self.names.pop();
        }
    }
}

enum Failure {
    Conflicts(Vec<(ManagerId, Path)>),
    Invalid(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Self::Invalid(e)
    }
}

/// Upstream's `Updater.Apply` plus `stripMetaManager`: returns the merged, pruned object
/// and the new managers.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the inputs of upstream's Updater.Apply"
)]
fn apply_structured(
    typed: &Typed<'_>,
    live: &Value,
    config: &Value,
    mut managed: Managed,
    id: &ManagerId,
    api_version: &str,
    force: bool,
    reset: &Set,
) -> Result<(Value, Managed), Failure> {
    let config_set = typed.field_set(config, true)?.recursive_difference(reset);
    let mut merged = typed.merge(live, config)?;
    let previous = managed.remove(id);
    managed.insert(
        id.clone(),
        Entry {
            set: config_set,
            api_version: api_version.to_owned(),
            time: previous.as_ref().and_then(|p| p.time.clone()),
        },
    );
    if let Some(last) = previous.as_ref().filter(|p| !p.set.is_empty()) {
        let owned = managed
            .values()
            .fold(Set::new(), |acc, e| acc.union(&e.set));
        merged = typed.prune(
            &merged,
            &last.set.with_field_parents(),
            &owned.with_field_parents(),
        );
    }
    let cmp = typed.compare(live, &merged)?.exclude(reset);
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts: Vec<(ManagerId, Set)> = Vec::new();
    for (other, entry) in &managed {
        if other == id {
            continue;
        }
        let c = entry.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((other.clone(), c));
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by_cached_key(|(m, _)| m.identifier());
        let flat = conflicts
            .into_iter()
            .flat_map(|(m, set)| set.paths().into_iter().map(move |p| (m.clone(), p)))
            .collect();
        return Err(Failure::Conflicts(flat));
    }
    for (other, c) in &conflicts {
        if let Some(e) = managed.get_mut(other) {
            e.set = e.set.difference(c);
        }
    }
    for (other, entry) in &mut managed {
        if other != id {
            entry.set = entry.set.difference(&cmp.removed);
        }
    }
    managed.retain(|_, e| !e.set.is_empty());
    if let Some(mine) = managed.get_mut(id) {
        mine.set = mine.set.difference(&strip_set());
        if mine.set.is_empty() {
            managed.remove(id);
        }
    }
    Ok((merged, managed))
}

/// The fields kubectl's client-side apply last set and nobody changed since (upstream
/// `lastAppliedManager.allowedConflictsFromLastApplied`); None without a usable annotation.
fn allowed_from_last_applied(typed: &Typed<'_>, live: &Value, api_version: &str) -> Option<Set> {
    let text = live
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    if text.is_empty() {
        return None;
    }
    let last: Value = serde_json::from_str(text).ok()?;
    if !last.is_object() || last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let set = typed.field_set(&last, true).ok()?;
    let cmp = typed.compare(&last, live).ok()?;
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

fn has_last_applied(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// The last-applied annotation for `config` (upstream `buildLastApplied`: the config
/// without that annotation, as Go encodes it: sorted keys, trailing newline).
fn build_last_applied(config: &Value) -> String {
    let mut copy = config.clone();
    if let Some(Value::Object(ann)) = copy
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        ann.remove(LAST_APPLIED);
    }
    let mut out = gojson::to_string(&copy);
    out.push('\n');
    out
}

fn set_last_applied(obj: &mut Value, text: String) {
    if let Some(Value::Object(ann)) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        ann.insert(LAST_APPLIED.to_owned(), Value::String(text));
    }
}

fn to_conflicts(flat: Vec<(ManagerId, Path)>) -> Vec<Conflict> {
    flat.into_iter()
        .map(|(id, path)| Conflict {
            manager: id.manager.clone(),
            field: path_to_string(&path),
            message: format!("conflict with {}", id.print()),
        })
        .collect()
}

/// `PATCH` with `application/apply-patch+yaml` (server-side apply).
///
/// `live` is None for a create. Returns the new object: the configuration merged into
/// the live object (objects field by field, lists by key or value), with
/// `metadata.managedFields` updated: an `Apply` entry for `manager` (and `subresource`)
/// owning exactly the configuration's fields. Fields this manager applied before and no
/// longer applies are removed from the object unless another manager owns them.
///
/// A field another manager owns and this configuration sets to a *different* value is a
/// conflict (same value: shared ownership); with `force` this manager takes it. As
/// upstream: applying to an object that has no managedFields first gives all its fields
/// to a `before-first-apply` Update entry; for `kubectl`, conflicts on fields still as its
/// `last-applied-configuration` annotation left them are forced, and that annotation, when
/// present, is rewritten from the configuration. The entry's time moves to `now` only when
/// the object changes.
///
/// # Errors
///
/// [`ApplyError::Conflicts`] as above; [`ApplyError::Invalid`] for a configuration that is
/// not an object, carries `metadata.managedFields`, names another `apiVersion`, or has
/// list items without their keys, duplicated keys or set items that are not scalars, and
/// for undecodable live managedFields.
#[expect(
    clippy::too_many_arguments,
    reason = "the API server's call, as specified: one value per request parameter"
)]
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    force: bool,
    schema: &dyn Schema,
    now: &str,
) -> Result<Value, ApplyError> {
    if manager.is_empty() {
        return Err(ApplyError::Invalid(
            "fieldManager: Required value: is required for apply requests".to_owned(),
        ));
    }
    let Value::Object(config_map) = config else {
        return Err(ApplyError::Invalid(
            "apply configuration must be an object".to_owned(),
        ));
    };
    if managed_fields_of(config).is_some_and(|mf| !mf.is_null()) {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    if let Some(v) = config_map.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && v != api_version
    {
        return Err(ApplyError::Invalid(format!(
            "Incorrect version specified in apply patch. Specified patch version: {v}, expected: {api_version}"
        )));
    }
    let typed = Typed { schema };
    let reset = set_of_field_paths(&schema.reset_fields(subresource));
    let empty = Value::Object(Map::new());
    let live_obj = live.map_or_else(|| empty.clone(), without_managed_fields);
    let mut managers = managed::decode(live.and_then(managed_fields_of))
        .map_err(|e| ApplyError::Invalid(format!("failed to decode managers fields: {e}")))?;
    let id = ManagerId::new(manager, Operation::Apply, api_version, subresource);
    if managers.is_empty() && live.is_some() {
        let before = ManagerId::new(
            BEFORE_FIRST_APPLY,
            Operation::Update,
            api_version,
            subresource,
        );
        record_update(
            &typed,
            &empty,
            &live_obj,
            &mut managers,
            &before,
            api_version,
            &reset,
            now,
        )
        .map_err(|e| {
            ApplyError::Invalid(format!("failed to create manager for existing fields: {e}"))
        })?;
        managed::cap_update_managers(&mut managers);
    }
    let run = |force: bool, managers: Managed| {
        apply_structured(
            &typed,
            &live_obj,
            config,
            managers,
            &id,
            api_version,
            force,
            &reset,
        )
    };
    let (mut obj, mut managers) = match run(force, managers.clone()) {
        Ok(done) => done,
        Err(Failure::Invalid(e)) => return Err(ApplyError::Invalid(e)),
        Err(Failure::Conflicts(flat)) => {
            let allowed = (manager == KUBECTL)
                .then(|| allowed_from_last_applied(&typed, &live_obj, api_version))
                .flatten();
            let Some(allowed) = allowed else {
                return Err(ApplyError::Conflicts(to_conflicts(flat)));
            };
            let remaining: Vec<_> = flat.into_iter().filter(|(_, p)| !allowed.has(p)).collect();
            if !remaining.is_empty() {
                return Err(ApplyError::Conflicts(to_conflicts(remaining)));
            }
            match run(true, managers) {
                Ok(done) => done,
                Err(Failure::Invalid(e)) => return Err(ApplyError::Invalid(e)),
                Err(Failure::Conflicts(flat)) => {
                    return Err(ApplyError::Conflicts(to_conflicts(flat)));
                }
            }
        }
    };
    if (!fieldpath::values_equal(&obj, &live_obj) || live.is_none())
        && let Some(mine) = managers.get_mut(&id)
    {
        mine.time = Some(now.to_owned());
    }
    if manager == KUBECTL && has_last_applied(&obj) {
        set_last_applied(&mut obj, build_last_applied(config));
    }
    set_managed_fields(&mut obj, &managers);
    Ok(obj)
}

/// Records a non-apply write (create, update, patch) by `manager`.
///
/// `old` is None for a create; `new` is the object about to be stored. Returns `new` with
/// `metadata.managedFields` updated as upstream's field manager does it: an `Update` entry
/// for (`manager`, `api_version`, `subresource`) gains the fields this write added or
/// modified, those fields leave every other manager, removed fields leave everyone, and
/// managers left with no fields are dropped (at most ten Update entries are kept; older
/// ones fold into `ancient-changes`).
///
/// The request may replace managedFields: when `new` carries managedFields that decode to
/// at least one entry, they are the base instead of `old`'s (kubectl's client-side to
/// server-side apply migration JSON-patches them this way); `[]` (or one empty entry)
/// clears them, and an existing object without managedFields is then left untracked. On a
/// subresource the request's managedFields are ignored. Malformed managedFields in the
/// request fall back to `old`'s; if tracking fails, `old`'s managedFields are kept.
pub fn update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    schema: &dyn Schema,
    now: &str,
) -> Value {
    let mut out = new.clone();
    if !new.is_object() {
        return out;
    }
    let old_mf = old.and_then(managed_fields_of);
    let decode_old = || managed::decode(old_mf).unwrap_or_default();
    let new_mf = managed_fields_of(new);
    let base = if subresource.is_some() {
        decode_old()
    } else if managed::is_reset(new_mf) {
        Managed::new()
    } else {
        match managed::decode(new_mf) {
            Ok(m) if !m.is_empty() => m,
            _ => decode_old(),
        }
    };
    // Upstream `skipNonAppliedManager`: an existing object nobody tracks stays untracked.
    let has_uid = old
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .is_some_and(|u| !u.is_empty());
    if base.is_empty() && has_uid {
        set_managed_fields(&mut out, &base);
        return out;
    }
    let typed = Typed { schema };
    let reset = set_of_field_paths(&schema.reset_fields(subresource));
    let old_obj = old.map_or_else(|| Value::Object(Map::new()), without_managed_fields);
    let new_obj = without_managed_fields(new);
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let id = ManagerId::new(manager, Operation::Update, api_version, subresource);
    let mut managers = base;
    match record_update(
        &typed,
        &old_obj,
        &new_obj,
        &mut managers,
        &id,
        api_version,
        &reset,
        now,
    ) {
        Ok(()) => {
            managed::cap_update_managers(&mut managers);
            set_managed_fields(&mut out, &managers);
        }
        Err(_) => {
            // Upstream `UpdateNoErrors`: keep the previous managedFields.
            if let Some(Value::Object(meta)) = out.get_mut("metadata") {
                match old_mf {
                    Some(mf) => {
                        meta.insert("managedFields".to_owned(), mf.clone());
                    }
                    None => {
                        meta.remove("managedFields");
                    }
                }
            }
        }
    }
    out
}

/// The default field manager of a write that named none, from its `User-Agent` as
/// upstream derives it: the text before the first `/`, without non-printable characters,
/// cut to 128 bytes (`kubectl/v1.32.4 (linux/amd64) kubernetes/abc` -> `kubectl`).
#[must_use]
pub fn manager_from_user_agent(ua: &str) -> String {
    let prefix = ua.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| is_print(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// Go's `unicode.IsPrint`, approximately: graphic characters and the ASCII space.
fn is_print(c: char) -> bool {
    c == ' '
        || !(c.is_control()
            || c.is_whitespace()
            || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}'))
}

#[cfg(test)]
mod tests;
