//! The verbs over the store: create, get, list, update, patch, delete, deletecollection and
//! the status/scale/binding/finalize subresources, with the object lifecycle every kind
//! shares (uid, timestamps, generation, resourceVersion, finalizers, graceful deletion).
//! Each takes typed options (`options.rs`) and asks the resource's strategy for everything
//! kind-specific; none sees the HTTP request.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value, json};
use sluice_store::{KeyValue, StoreError};

use super::options::{
    DeleteOptions, FieldValidation, ListOptions, PatchOptions, PatchType, WriteOptions,
};
use super::status::{ApiError, ApiResult, Cause};
use super::{ApiServer, decorate, encode, now};
use crate::registry::validation::{name_error, validate_meta};
use crate::registry::{Resource, Subresource, ValidationContext};

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const FINALIZER_ORPHAN: &str = "orphan";
const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// How long a write without a resourceVersion precondition keeps retrying against fresh
/// state while other writers keep winning (upstream bounds `GuaranteedUpdate` only by the
/// request's deadline).
const GUARANTEED_UPDATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// A create or update's result: the object and the warnings to answer with.
pub(super) type Written = (Value, Vec<String>);

/// A patch's result: the object, the warnings, and whether it was created (server-side
/// apply of a missing object answers 201).
pub(super) type Patched = (Value, Vec<String>, bool);

/// One page of a list.
#[derive(Debug)]
pub(super) struct Page {
    pub items: Vec<Value>,
    pub revision: i64,
    pub continue_token: Option<String>,
}

/// A scale subresource write.
#[derive(Debug)]
pub(super) enum ScaleWrite {
    /// PUT of a whole Scale.
    Replace(Value),
    /// PATCH of the Scale view.
    Patch(PatchType, Value),
}

/// The retry budget of one `GuaranteedUpdate`-style write.
pub(super) struct Retries {
    deadline: std::time::Instant,
}

impl Retries {
    pub(super) fn new() -> Self {
        Self {
            deadline: std::time::Instant::now() + GUARANTEED_UPDATE_DEADLINE,
        }
    }

    /// After a conflicting write: `Ok` to try again with fresh state, or the 409 once writers
    /// have kept winning past the deadline. The winner's write becomes visible once it is
    /// durable (a group commit's fsync), so the retry waits a moment instead of spinning on
    /// the same stale read.
    pub(super) async fn again(&self, r: &Resource, name: &str) -> ApiResult<()> {
        if std::time::Instant::now() < self.deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok(())
        } else {
            Err(ApiError::conflict(
                &r.group,
                &r.plural,
                name,
                "too many concurrent updates",
            ))
        }
    }
}

/// A compare-and-swap that lost to another writer (as opposed to a precondition the client
/// set, which `write_update` does not check).
fn is_write_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.reason == "Conflict"
}

/// Whether a patch sets `metadata.resourceVersion`, making that version a precondition.
/// Only the field itself counts: the string "resourceVersion" anywhere else in the body (a
/// label value, an annotation, a container arg) does not.
pub(super) fn pins_resource_version(t: PatchType, patch: &Value) -> bool {
    match t {
        PatchType::Json => patch.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op["path"] == "/metadata/resourceVersion"
                    && matches!(op["op"].as_str(), Some("add" | "replace"))
            })
        }),
        PatchType::Merge | PatchType::Strategic | PatchType::Apply => {
            !patch["metadata"]["resourceVersion"].is_null()
        }
    }
}

/// The strategy's list strategies as the patch crate's schema.
struct StrategySchema<'a>(&'a Resource);

impl sluice_patch::PatchSchema for StrategySchema<'_> {
    fn list_strategy(&self, path: &[&str]) -> sluice_patch::ListStrategy {
        self.0
            .strategy
            .list_strategy(path)
            .unwrap_or(sluice_patch::ListStrategy::Atomic)
    }
}

fn apply_patch(r: &Resource, t: PatchType, current: &Value, patch: &Value) -> ApiResult<Value> {
    match t {
        PatchType::Json => sluice_patch::json_patch(current, patch).map_err(|e| {
            ApiError::invalid(
                "",
                &r.kind,
                current["metadata"]["name"].as_str().unwrap_or_default(),
                vec![Cause {
                    reason: "FieldValueInvalid",
                    field: String::new(),
                    message: e.to_string(),
                }],
            )
        }),
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            Ok(sluice_patch::merge_patch(current, patch))
        }
        PatchType::Strategic => {
            if r.strategy.list_strategy(&[]).is_none() {
                return Err(ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for {})",
                    r.group_resource()
                )));
            }
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            }
            sluice_patch::strategic_merge_patch_with(current, patch, &StrategySchema(r))
                .map_err(|e| ApiError::bad_request(e.to_string()))
        }
        PatchType::Apply => Err(ApiError::unsupported_media_type(
            "server-side apply is handled by apply, not as a patch",
        )),
    }
}

/// Decode through the typed struct; returns the canonical value and warnings.
pub(super) fn decode(
    r: &Resource,
    body: &Value,
    mode: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let mut body = body.clone();
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    // apiVersion/kind may be omitted; a wrong one is an error.
    for (field, want) in [("apiVersion", r.api_version()), ("kind", r.kind.clone())] {
        match body.get(field).and_then(Value::as_str) {
            None | Some("") => {
                body[field] = json!(want);
            }
            Some(got) if got != want => {
                let got_kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
                return Err(ApiError::bad_request(format!(
                    "{got_kind} in version \"{}\" cannot be handled as a {}: the {field} in the data ({got}) does not match the expected {field} ({want})",
                    r.version, r.kind
                )));
            }
            Some(_) => {}
        }
    }
    let c = r.strategy.canonical(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            r.kind, r.version, r.kind
        ))
    })?;
    let unknown: Vec<String> = c
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        FieldValidation::Strict if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            r.kind,
            r.version,
            r.kind,
            unknown.join(", ")
        ))),
        FieldValidation::Warn => Ok((c.value, unknown)),
        _ => Ok((c.value, Vec::new())),
    }
}

pub(super) fn meta(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

fn generate_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| GENERATE_ALPHABET[rng.random_range(0..GENERATE_ALPHABET.len())] as char)
        .collect()
}

fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|d| !d.is_null())
}

/// Everything but metadata and status: a change here bumps `generation`.
fn spec_view(v: &Value) -> Value {
    let mut s = v.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    s
}

fn at_path<'a>(v: &'a Value, path: &[String]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[k.as_str()])
}

fn set_path(v: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        if !cur.get(k.as_str()).is_some_and(Value::is_object) {
            cur[k.as_str()] = json!({});
        }
        cur = &mut cur[k.as_str()];
    }
    cur[last.as_str()] = value;
}

/// The `autoscaling/v1` Scale view of an object with replicas.
pub(super) fn scale_view(r: &Resource, v: &Value) -> Value {
    let sel = r.strategy.scale_selector(v);
    let (spec_path, status_path) = r.strategy.scale_paths();
    let m = &v["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": at_path(v, &spec_path).as_i64().unwrap_or(0)},
        "status": {"replicas": at_path(v, &status_path).as_i64().unwrap_or(0), "selector": sel},
    })
}

/// A continue token: the revision the first page was read at and the last key returned.
fn encode_continue(rev: i64, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rev, "start": key}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(i64, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_i64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

impl ApiServer {
    fn validation_context(&self) -> ValidationContext {
        ValidationContext {
            node_port_range: self.config.node_port_range,
        }
    }

    /// Generic metadata validation plus the strategy's.
    fn validate(&self, r: &Resource, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_meta(obj, &mut causes);
        causes.extend(r.strategy.validate(obj, &self.validation_context()));
        causes
    }

    /// GET of one object.
    pub(super) async fn get(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<(Value, KeyValue)> {
        let kv = self
            .store
            .get(&r.key(ns, name))
            .await?
            .ok_or_else(|| ApiError::not_found(&r.group, &r.plural, name))?;
        Ok((decorate(r, &kv)?, kv))
    }

    async fn check_namespace(&self, r: &Resource, ns: Option<&str>) -> ApiResult<()> {
        let Some(ns) = ns.filter(|_| r.namespaced) else {
            return Ok(());
        };
        let ns_r = self.resource("", "v1", "namespaces");
        match self.store.get(&ns_r.key(None, ns)).await? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(kv) => {
                if is_deleting(&decorate(&ns_r, &kv)?) {
                    Err(ApiError::forbidden(format!(
                        "{} \"\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        r.plural,
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// POST to a collection.
    pub(super) async fn create(
        self: &Arc<Self>,
        r: &Resource,
        ns: Option<&str>,
        body: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let (mut obj, warnings) = decode(r, body, opts.field_validation)?;
        let ns = if r.namespaced { ns } else { None };
        if r.namespaced {
            let body_ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            let url_ns = ns.unwrap_or_default();
            if !body_ns.is_empty() && body_ns != url_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if url_ns.is_empty() {
                return Err(ApiError::bad_request(
                    "a namespaced resource must be created in a namespace",
                ));
            }
        }
        let generate = obj["metadata"]["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let given = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if given.is_empty() && generate.is_empty() {
            return Err(ApiError::invalid(
                &r.group,
                &r.kind,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                }],
            ));
        }
        self.check_namespace(r, ns).await?;
        {
            let m = meta(&mut obj);
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(k);
            }
            if let Some(ns) = ns {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now()));
            if r.strategy.uses_generation() {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        let mut attempts = 0;
        let base = obj;
        loop {
            attempts += 1;
            let name = if given.is_empty() {
                format!("{generate}{}", generate_suffix())
            } else {
                given.clone()
            };
            let mut obj = base.clone();
            meta(&mut obj).insert("name".into(), json!(name));
            // After naming: some kinds derive labels from the name (a Job's `job-name`).
            r.strategy.prepare_create(&mut obj);
            r.strategy.default(&mut obj);
            self.admit_create(r, ns.unwrap_or_default(), &obj).await?;
            let mut causes = Vec::new();
            if let Some(c) = name_error(r.strategy.name_rule(), &name) {
                causes.push(c);
            }
            causes.extend(self.validate(r, &obj));
            if !causes.is_empty() {
                return Err(ApiError::invalid(&r.group, &r.kind, &name, causes));
            }
            if !opts.managed_fields_set {
                Self::track_managed_fields(r, None, &mut obj, opts.field_manager.as_deref(), None);
            }
            let allocated = self.allocate(r, ns, &name, &mut obj, None).await?;
            if opts.dry_run {
                self.release(&allocated).await;
                return Ok((obj, warnings));
            }
            match self.store.create(&r.key(ns, &name), encode(r, &obj)).await {
                Ok(kv) => {
                    let v = decorate(r, &kv)?;
                    self.after_write(r, &v).await;
                    return Ok((v, warnings));
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    self.release(&allocated).await;
                    if given.is_empty() && attempts < 5 {
                        continue;
                    }
                    return Err(ApiError::already_exists(&r.group, &r.plural, &name));
                }
                Err(e) => {
                    self.release(&allocated).await;
                    return Err(e.into());
                }
            }
        }
    }

    /// PUT: full replacement (or of `.status` / `spec.finalizers` for subresources).
    pub(super) async fn update(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
        body: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let (obj, warnings) = decode(r, body, opts.field_validation)?;
        let body_name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let want_rv = body["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from);
        let retries = Retries::new();
        loop {
            let (current, kv) = self.get(r, ns, name).await?;
            if let Some(rv) = &want_rv
                && *rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::stale(&r.group, &r.plural, name));
            }
            match self
                .write_update(r, ns, name, &current, &kv, obj.clone(), sub, opts)
                .await
            {
                // Without a precondition a PUT is a GuaranteedUpdate too.
                Err(e) if is_write_conflict(&e) && want_rv.is_none() => {
                    retries.again(r, name).await?;
                }
                other => return other.map(|v| (v, warnings)),
            }
        }
    }

    /// A write of `obj` against whatever is stored, retried after conflicting writes (server-
    /// side apply computes `obj` from the live object first; a lost race re-applies).
    pub(super) async fn update_unconditionally(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let (current, kv) = self.get(r, ns, name).await?;
        if current["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
            && !obj["metadata"]["resourceVersion"].is_null()
        {
            return Err(ApiError::stale(&r.group, &r.plural, name));
        }
        self.write_update(r, ns, name, &current, &kv, obj, sub, opts)
            .await
            .map(|v| (v, Vec::new()))
    }

    /// Shared tail of PUT and PATCH: merge preserved fields, default, validate, bump
    /// generation, compare-and-swap. A no-op write returns the current object unchanged.
    #[allow(
        clippy::too_many_arguments,
        reason = "the shared tail of every update: the target, the observed object and its version, the new object and the options"
    )]
    async fn write_update(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        current: &Value,
        kv: &KeyValue,
        obj: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let mut new = match sub {
            Some(Subresource::Status) => {
                let mut n = current.clone();
                n["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
                n
            }
            Some(Subresource::Finalize) => {
                let mut n = current.clone();
                n["spec"]["finalizers"] =
                    obj["spec"].get("finalizers").cloned().unwrap_or(json!([]));
                n
            }
            Some(Subresource::EphemeralContainers) => {
                let mut n = current.clone();
                let ecs = obj["spec"].get("ephemeralContainers").cloned();
                match (n.get_mut("spec").and_then(Value::as_object_mut), ecs) {
                    (Some(spec), Some(ecs)) if !ecs.is_null() => {
                        spec.insert("ephemeralContainers".into(), ecs);
                    }
                    (Some(spec), _) => {
                        spec.remove("ephemeralContainers");
                    }
                    (None, _) => {}
                }
                n
            }
            _ => {
                let mut n = obj;
                if r.strategy.has_status() {
                    n["status"] = current.get("status").cloned().unwrap_or(Value::Null);
                }
                if sub.is_none() {
                    r.strategy.prepare_update(current, &mut n);
                }
                n
            }
        };
        if new.get("status").is_some_and(Value::is_null)
            && let Some(m) = new.as_object_mut()
        {
            m.remove("status");
        }
        {
            let cm = &current["metadata"];
            let m = meta(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "generation",
            ] {
                match cm.get(k) {
                    Some(v) if !v.is_null() => {
                        m.insert(k.into(), v.clone());
                    }
                    _ => {
                        m.remove(k);
                    }
                }
            }
            m.insert("name".into(), json!(name));
            m.insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
            if sub.is_some() || !m.contains_key("managedFields") {
                // Subresource writes and bodies without managedFields keep the stored ones.
                match cm.get("managedFields") {
                    Some(v) if !v.is_null() => {
                        m.insert("managedFields".into(), v.clone());
                    }
                    _ => {
                        m.remove("managedFields");
                    }
                }
            }
        }
        r.strategy.default(&mut new);
        let mut causes = self.validate(r, &new);
        causes.extend(r.strategy.validate_update(current, &new));
        if let Some(sub) = sub {
            causes.extend(r.strategy.validate_subresource_update(sub, current, &new));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&r.group, &r.kind, name, causes));
        }
        if r.strategy.uses_generation() && spec_view(current) != spec_view(&new) {
            let g = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta(&mut new).insert("generation".into(), json!(g));
        }
        if *current == new {
            return Ok(new);
        }
        if !opts.managed_fields_set {
            Self::track_managed_fields(
                r,
                Some(current),
                &mut new,
                opts.field_manager.as_deref(),
                sub.map(Subresource::name),
            );
        }
        let allocated = self.allocate(r, ns, name, &mut new, Some(current)).await?;
        if opts.dry_run {
            self.release(&allocated).await;
            return Ok(new);
        }
        let finalizers_empty = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        let key = r.key(ns, name);
        if is_deleting(&new) && finalizers_empty && !r.strategy.deletion_pending(&new) {
            return match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(prev) => {
                    self.on_removed(r, &decorate(r, &prev)?).await;
                    Ok(new)
                }
                Err(StoreError::Conflict { .. }) => Err(ApiError::stale(&r.group, &r.plural, name)),
                Err(StoreError::NotFound { .. }) => {
                    Err(ApiError::not_found(&r.group, &r.plural, name))
                }
                Err(e) => Err(e.into()),
            };
        }
        match self
            .store
            .update(&key, encode(r, &new), kv.mod_revision)
            .await
        {
            Ok(kv) => {
                self.release_dropped(r, current, &new).await;
                let v = decorate(r, &kv)?;
                self.after_write(r, &v).await;
                Ok(v)
            }
            Err(e) => {
                self.release(&allocated).await;
                match e {
                    StoreError::Conflict { .. } => Err(ApiError::stale(&r.group, &r.plural, name)),
                    StoreError::NotFound { .. } => {
                        Err(ApiError::not_found(&r.group, &r.plural, name))
                    }
                    e => Err(e.into()),
                }
            }
        }
    }

    /// PATCH with JSON patch, merge patch or strategic merge patch. As upstream's
    /// `GuaranteedUpdate`, a patch is re-applied to the fresh object after a conflicting write
    /// until it applies, unless the patch itself sets `metadata.resourceVersion` (then that
    /// version is a precondition and a mismatch is a 409).
    pub(super) async fn patch(
        self: &Arc<Self>,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
        patch: &Value,
        opts: &PatchOptions,
    ) -> ApiResult<Patched> {
        if opts.patch_type == PatchType::Apply {
            return self.apply(r, ns, name, sub, patch, opts).await;
        }
        let pinned = pins_resource_version(opts.patch_type, patch);
        let retries = Retries::new();
        loop {
            let (current, kv) = self.get(r, ns, name).await?;
            let patched = apply_patch(r, opts.patch_type, &current, patch)?;
            if !patched.is_object() {
                return Err(ApiError::bad_request(
                    "the patch must produce a JSON object",
                ));
            }
            if pinned
                && patched["metadata"]["resourceVersion"].as_str()
                    != Some(kv.mod_revision.to_string().as_str())
            {
                return Err(ApiError::stale(&r.group, &r.plural, name));
            }
            let (obj, warnings) = decode(r, &patched, opts.write.field_validation)?;
            match self
                .write_update(r, ns, name, &current, &kv, obj, sub, &opts.write)
                .await
            {
                Err(e) if is_write_conflict(&e) && !pinned => retries.again(r, name).await?,
                other => return other.map(|v| (v, warnings, false)),
            }
        }
    }

    /// GET of the scale subresource.
    pub(super) async fn get_scale(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        let (v, _) = self.get(r, ns, name).await?;
        Ok(scale_view(r, &v))
    }

    /// PUT or PATCH of the scale subresource, retried as a `GuaranteedUpdate` unless the
    /// Scale names a resourceVersion.
    pub(super) async fn write_scale(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        write: &ScaleWrite,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let retries = Retries::new();
        loop {
            let (current, kv) = self.get(r, ns, name).await?;
            let view = scale_view(r, &current);
            let scale = match write {
                ScaleWrite::Patch(t, patch) => {
                    let scale_r = Resource::new(
                        "autoscaling",
                        "v1",
                        "scale",
                        "scale",
                        "Scale",
                        true,
                        crate::registry::kinds::configmap::ConfigMapStrategy,
                    );
                    if *t == PatchType::Strategic {
                        sluice_patch::strategic_merge_patch(&view, patch, "Scale")
                            .map_err(|e| ApiError::bad_request(e.to_string()))?
                    } else {
                        apply_patch(&scale_r, *t, &view, patch)?
                    }
                }
                ScaleWrite::Replace(v) => v.clone(),
            };
            if let Some(rv) = scale["metadata"]["resourceVersion"]
                .as_str()
                .filter(|s| !s.is_empty())
                && rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::stale(&r.group, &r.plural, name));
            }
            let replicas = match &scale["spec"]["replicas"] {
                Value::Null => 0,
                Value::Number(n)
                    if n.as_i64()
                        .is_some_and(|x| x >= 0 && x <= i64::from(i32::MAX)) =>
                {
                    n.as_i64().unwrap_or(0)
                }
                other => {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        name,
                        vec![Cause::invalid(
                            "spec.replicas",
                            other,
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
            };
            let mut new = current.clone();
            set_path(&mut new, &r.strategy.scale_paths().0, json!(replicas));
            match self
                .write_update(r, ns, name, &current, &kv, new, None, opts)
                .await
            {
                Ok(v) => return Ok(scale_view(r, &v)),
                Err(e) if is_write_conflict(&e) => retries.again(r, name).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST pods/{name}/binding`: assign the pod to a node, once.
    pub(super) async fn bind(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        body: &Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let node = body["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                vec![Cause::required("target.name")],
            ));
        }
        let retries = Retries::new();
        loop {
            let (current, kv) = self.get(r, ns, name).await?;
            if is_deleting(&current) {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(existing) = current["spec"]["nodeName"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            let mut new = current.clone();
            new["spec"]["nodeName"] = json!(node);
            let conds = new["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conds: Vec<Value> = conds
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
            new["status"]["conditions"] = Value::Array(conds);
            if dry_run {
                break;
            }
            match self
                .store
                .update(&r.key(ns, name), encode(r, &new), kv.mod_revision)
                .await
            {
                Ok(_) => break,
                // Another write won: bind against the fresh pod (it may be bound by now).
                Err(StoreError::Conflict { .. }) => retries.again(r, name).await?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    /// DELETE of one object, with graceful deletion, finalizers and propagation policy.
    /// Returns the HTTP code (200 gone, 202 marked) and the object.
    pub(super) async fn delete(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<(u16, Value)> {
        let retries = Retries::new();
        loop {
            let (current, kv) = self.get(r, ns, name).await?;
            if let Some(uid) = &opts.uid
                && current["metadata"]["uid"].as_str() != Some(uid)
            {
                return Err(ApiError::conflict(
                    &r.group,
                    &r.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        current["metadata"]["uid"].as_str().unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = &opts.rv
                && *rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::conflict(
                    &r.group,
                    &r.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
            let mut new = current.clone();
            let mut finalizers: Vec<String> = current["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(String::from))
                .collect();
            match opts.propagation.as_deref() {
                Some("Orphan") if !finalizers.iter().any(|f| f == FINALIZER_ORPHAN) => {
                    finalizers.push(FINALIZER_ORPHAN.into());
                }
                Some("Foreground") if !finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) => {
                    finalizers.push(FINALIZER_FOREGROUND.into());
                }
                _ => {}
            }
            let already = is_deleting(&current);
            let grace = r.strategy.deletion_grace(&current, opts.grace);
            // Whether the object must wait, judged with the grace period this DELETE sets.
            let pending = {
                let mut probe = current.clone();
                if !already || r.strategy.shortens_grace() {
                    meta(&mut probe).insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                r.strategy.deletion_pending(&probe)
            };
            if finalizers.is_empty() && grace == 0 && !pending {
                if opts.dry_run {
                    return Ok((200, current));
                }
                match self
                    .store
                    .delete(&r.key(ns, name), Some(kv.mod_revision))
                    .await
                {
                    Ok(prev) => {
                        let v = decorate(r, &prev)?;
                        self.on_removed(r, &v).await;
                        return Ok((200, v));
                    }
                    Err(StoreError::Conflict { .. }) => retries.again(r, name).await?,
                    Err(StoreError::NotFound { .. }) => {
                        return Err(ApiError::not_found(&r.group, &r.plural, name));
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            {
                let existing = current["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0);
                let m = meta(&mut new);
                if !already || r.strategy.shortens_grace() {
                    let ts = if grace > 0 {
                        let t = k8s_openapi::jiff::Timestamp::now().as_second() + grace;
                        k8s_openapi::jiff::Timestamp::from_second(t)
                            .map_or_else(|_| now(), |t| t.to_string())
                    } else {
                        now()
                    };
                    if !already || grace < existing {
                        m.insert("deletionTimestamp".into(), json!(ts));
                    }
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                if finalizers.is_empty() {
                    m.remove("finalizers");
                } else {
                    m.insert("finalizers".into(), json!(finalizers));
                }
            }
            r.strategy.mark_deleting(&mut new);
            if new == current {
                return Ok((202, current));
            }
            if opts.dry_run {
                return Ok((202, new));
            }
            match self
                .store
                .update(&r.key(ns, name), encode(r, &new), kv.mod_revision)
                .await
            {
                Ok(kv) => {
                    let code = if grace > 0 || !finalizers.is_empty() || pending {
                        202
                    } else {
                        200
                    };
                    return Ok((code, decorate(r, &kv)?));
                }
                Err(StoreError::Conflict { .. }) => retries.again(r, name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A consistent page of matching objects.
    pub(super) async fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Page> {
        let prefix = r.list_prefix(ns);
        let (mut rev, mut start) = match opts.continue_token.as_deref() {
            Some(tok) => {
                let (rev, start) = decode_continue(tok)?;
                if !start.starts_with(&prefix) {
                    return Err(ApiError::bad_request(
                        "continue key is not valid: it is for another resource",
                    ));
                }
                (Some(rev), Some(start))
            }
            None => (None, None),
        };
        let sel = &opts.selectors;
        let mut items = Vec::new();
        loop {
            // Without selectors every key is an item: read exactly what the page needs.
            let chunk = opts
                .limit
                .map(|l| (l - items.len()).max(1) * if sel.is_empty() { 1 } else { 2 });
            let res = match self
                .store
                .range(&prefix, start.as_deref(), chunk, rev)
                .await
            {
                Err(StoreError::Compacted { .. }) => {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                other => other?,
            };
            rev = Some(res.revision);
            let n = res.kvs.len();
            for (i, kv) in res.kvs.iter().enumerate() {
                let v = decorate(r, kv)?;
                if sel.matches(&v) {
                    items.push(v);
                }
                if opts.limit.is_some_and(|l| items.len() >= l) {
                    let more = res.more || i + 1 < n;
                    return Ok(Page {
                        items,
                        revision: res.revision,
                        continue_token: more.then(|| encode_continue(res.revision, &kv.key)),
                    });
                }
            }
            if !res.more {
                return Ok(Page {
                    items,
                    revision: res.revision,
                    continue_token: None,
                });
            }
            start = res.kvs.last().map(|kv| kv.key.clone());
        }
    }

    /// DELETE of a collection: each matching object as a DELETE of its own.
    pub(super) async fn delete_collection(
        &self,
        r: &Resource,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Page> {
        let page = self.list(r, ns, list).await?;
        let mut deleted = Vec::new();
        for v in &page.items {
            let name = v["metadata"]["name"].as_str().unwrap_or_default();
            let obj_ns = v["metadata"]["namespace"].as_str();
            match self.delete(r, obj_ns, name, opts).await {
                Ok((_, v)) => deleted.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Page {
            items: deleted,
            revision: page.revision,
            continue_token: page.continue_token,
        })
    }
}

#[cfg(test)]
mod tests;
