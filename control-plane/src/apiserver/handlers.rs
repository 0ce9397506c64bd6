//! The verbs: create, get, list, update, patch, delete, deletecollection, and the
//! status/scale/binding/finalize subresources.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};
use sluice_store::{KeyValue, StoreError};

use super::selectors::{FieldSelector, LabelSelector, allowed_fields};
use super::status::{ApiError, ApiResult, Cause};
use super::{
    ApiServer, Req, Target, admission, decorate, encode, json_response, now, partial_metadata,
    table, watch,
};
use crate::registry::{self, Resource, Subresource};

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const FINALIZER_ORPHAN: &str = "orphan";
const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

pub(super) async fn serve(
    srv: &Arc<ApiServer>,
    req: &Req,
    target: Target,
    watching: bool,
) -> ApiResult<Response> {
    match (target, &req.method) {
        (Target::Collection { r, ns }, &Method::GET) => {
            if watching {
                watch::serve(srv, req, r, ns).await
            } else {
                list(srv, req, r, ns.as_deref()).await
            }
        }
        (Target::Collection { r, ns }, &Method::POST) => {
            let (v, warnings) = srv.create(r, ns, req).await?;
            Ok(with_warnings(json_response(201, &v), &warnings))
        }
        (Target::Collection { r, ns }, &Method::DELETE) => {
            delete_collection(srv, req, r, ns.as_deref()).await
        }
        (Target::Object { r, ns, name, sub }, m) => {
            let ns = ns.as_deref();
            match (sub, m) {
                (None | Some(Subresource::Status), &Method::GET) => {
                    let (v, _) = srv.get(r, ns, &name).await?;
                    Ok(render_one(req, r, &v))
                }
                (Some(Subresource::Scale), &Method::GET) => {
                    let (v, _) = srv.get(r, ns, &name).await?;
                    Ok(json_response(200, &scale_view(&v)))
                }
                (Some(Subresource::Scale), &Method::PUT | &Method::PATCH) => {
                    srv.write_scale(req, r, ns, &name).await
                }
                (Some(Subresource::Binding), &Method::POST) => srv.bind(req, r, ns, &name).await,
                (None | Some(Subresource::Status | Subresource::Finalize), &Method::PUT) => {
                    let (v, warnings) = srv.update(req, r, ns, &name, sub).await?;
                    Ok(with_warnings(json_response(200, &v), &warnings))
                }
                (None | Some(Subresource::Status), &Method::PATCH) => {
                    let v = srv.patch(req, r, ns, &name, sub).await?;
                    Ok(json_response(200, &v))
                }
                (None, &Method::DELETE) => {
                    let opts = DeleteOptions::from_req(req)?;
                    let (code, v) = srv.delete(r, ns, &name, &opts).await?;
                    Ok(json_response(code, &v))
                }
                (_, m) => Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource ({m})"
                ))),
            }
        }
        (_, m) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(h) = axum::http::HeaderValue::from_str(&v) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

fn render_one(req: &Req, r: &Resource, v: &Value) -> Response {
    if req.wants_metadata_only() {
        json_response(200, &partial_metadata(v))
    } else if req.wants_table() {
        json_response(
            200,
            &table::table(r, std::slice::from_ref(v), true, req, None, None),
        )
    } else {
        json_response(200, v)
    }
}

fn parse_body(req: &Req) -> ApiResult<Value> {
    let ct = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or_default().trim();
    if !matches!(
        base,
        "application/json" | "application/yaml" | "text/yaml" | "" | "*/*"
    ) {
        // Protobuf is not spoken here; client-go falls back to JSON on 415.
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {base:?})"
        )));
    }
    let v: Value = if ct.contains("yaml") {
        serde_yaml::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("yaml parse error: {e}")))?
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

/// How unknown fields are treated (`fieldValidation=`).
fn field_validation(req: &Req) -> ApiResult<&'static str> {
    match req.q("fieldValidation") {
        None | Some("Warn") => Ok("Warn"),
        Some("Strict") => Ok("Strict"),
        Some("Ignore") => Ok("Ignore"),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation parameter unsupported: {other}. Valid values are Ignore, Warn, and Strict"
        ))),
    }
}

/// Decode through the typed struct; returns the canonical value and warnings.
fn decode(r: &Resource, body: &Value, mode: &str) -> ApiResult<(Value, Vec<String>)> {
    let mut body = body.clone();
    // apiVersion/kind may be omitted; a wrong one is an error.
    for (field, want) in [
        ("apiVersion", r.api_version()),
        ("kind", r.kind.to_string()),
    ] {
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
    let c = (r.canonical)(&body).map_err(|e| {
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
        "Strict" if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            r.kind,
            r.version,
            r.kind,
            unknown.join(", ")
        ))),
        "Warn" => Ok((c.value, unknown)),
        _ => Ok((c.value, Vec::new())),
    }
}

fn meta(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn generate_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| GENERATE_ALPHABET[rng.random_range(0..GENERATE_ALPHABET.len())] as char)
        .collect()
}

fn has_status_sub(r: &Resource) -> bool {
    r.has(Subresource::Status)
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

fn uses_generation(r: &Resource) -> bool {
    matches!(r.kind, "Deployment" | "ReplicaSet" | "Service" | "Pod")
}

#[derive(Debug, Default)]
pub(super) struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    rv: Option<String>,
    dry_run: bool,
}

impl DeleteOptions {
    fn from_req(req: &Req) -> ApiResult<Self> {
        let mut o = Self {
            dry_run: req.dry_run(),
            ..Self::default()
        };
        if !req.body.is_empty() {
            let body: Value = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
            o.grace = body["gracePeriodSeconds"].as_i64();
            o.propagation = body["propagationPolicy"].as_str().map(String::from);
            o.uid = body["preconditions"]["uid"].as_str().map(String::from);
            o.rv = body["preconditions"]["resourceVersion"]
                .as_str()
                .map(String::from);
            if body["dryRun"].as_array().is_some_and(|a| !a.is_empty()) {
                o.dry_run = true;
            }
            if body["orphanDependents"].as_bool() == Some(true) && o.propagation.is_none() {
                o.propagation = Some("Orphan".into());
            }
        }
        if let Some(g) = req.q("gracePeriodSeconds") {
            o.grace =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        if let Some(p) = req.q("propagationPolicy") {
            o.propagation = Some(p.to_string());
        }
        if let Some(p) = &o.propagation
            && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        Ok(o)
    }
}

fn scale_view(v: &Value) -> Value {
    let selector = v["spec"]["selector"].clone();
    let sel = LabelSelector::from_json(&selector)
        .map(|s| s.render())
        .unwrap_or_default();
    let m = &v["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": v["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": v["status"]["replicas"].as_i64().unwrap_or(0), "selector": sel},
    })
}

impl ApiServer {
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
            .ok_or_else(|| ApiError::not_found(r.group, r.plural, name))?;
        Ok((decorate(r, &kv)?, kv))
    }

    async fn check_namespace(&self, r: &Resource, ns: Option<&str>) -> ApiResult<()> {
        let Some(ns) = ns.filter(|_| r.namespaced) else {
            return Ok(());
        };
        let ns_r = registry::find("", "v1", "namespaces").expect("served");
        match self.store.get(&ns_r.key(None, ns)).await? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(kv) => {
                let v = decorate(r, &kv)?;
                if v["metadata"]
                    .get("deletionTimestamp")
                    .is_some_and(|d| !d.is_null())
                {
                    Err(ApiError::forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        r.plural, "",
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    pub(super) async fn create(
        self: &Arc<Self>,
        r: &'static Resource,
        ns: Option<String>,
        req: &Req,
    ) -> ApiResult<(Value, Vec<String>)> {
        let body = parse_body(req)?;
        let (mut obj, warnings) = decode(r, &body, field_validation(req)?)?;
        let ns = if r.namespaced { ns } else { None };
        if r.namespaced {
            let body_ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let url_ns = ns.clone().unwrap_or_default();
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
                r.group,
                r.kind,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                }],
            ));
        }
        self.check_namespace(r, ns.as_deref()).await?;
        {
            let m = meta(&mut obj);
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                m.remove(k);
            }
            if let Some(ns) = &ns {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now()));
            if uses_generation(r) {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if r.kind == "Namespace"
            && let Some(m) = obj.get_mut("status").and_then(Value::as_object_mut)
        {
            m.remove("phase");
        }
        admission::default_object(r.kind, &mut obj);
        if r.kind == "Pod" {
            self.check_service_account(&obj, ns.as_deref().unwrap_or_default())
                .await?;
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let name = if given.is_empty() {
                format!("{generate}{}", generate_suffix())
            } else {
                given.clone()
            };
            meta(&mut obj).insert("name".into(), json!(name));
            let mut causes = Vec::new();
            if let Some(c) = admission::name_error(r.kind, &name) {
                causes.push(c);
            }
            causes.extend(admission::validate(
                r.kind,
                &obj,
                self.config.node_port_range,
            ));
            if !causes.is_empty() {
                return Err(ApiError::invalid(r.group, r.kind, &name, causes));
            }
            let allocated = if r.kind == "Service" {
                self.allocate_service(&mut obj, None, &name)?
            } else {
                Vec::new()
            };
            if req.dry_run() {
                self.release(&allocated);
                return Ok((obj, warnings));
            }
            match self
                .store
                .create(&r.key(ns.as_deref(), &name), encode(r, &obj))
                .await
            {
                Ok(kv) => {
                    let v = decorate(r, &kv)?;
                    if r.kind == "Namespace" {
                        self.ensure_default_service_account(&name).await?;
                    }
                    return Ok((v, warnings));
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    self.release(&allocated);
                    if given.is_empty() && attempts < 5 {
                        continue;
                    }
                    return Err(ApiError::already_exists(r.group, r.plural, &name));
                }
                Err(e) => {
                    self.release(&allocated);
                    return Err(e.into());
                }
            }
        }
    }

    async fn ensure_default_service_account(self: &Arc<Self>, ns: &str) -> ApiResult<()> {
        let sa_r = registry::find("", "v1", "serviceaccounts").expect("served");
        if self
            .store
            .get(&sa_r.key(Some(ns), "default"))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": "default", "namespace": ns, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now()}});
        match self
            .store
            .create(&sa_r.key(Some(ns), "default"), encode(sa_r, &obj))
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn check_service_account(&self, pod: &Value, ns: &str) -> ApiResult<()> {
        let sa = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        let sa_r = registry::find("", "v1", "serviceaccounts").expect("served");
        if sa == "default" || self.store.get(&sa_r.key(Some(ns), sa)).await?.is_some() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "pods \"{}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found",
                pod["metadata"]["name"].as_str().unwrap_or_default()
            )))
        }
    }

    /// Allocate the `ClusterIP` and `NodePorts` a Service needs; returns what was newly taken.
    fn allocate_service(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        name: &str,
    ) -> ApiResult<Vec<Alloc>> {
        let mut taken = Vec::new();
        let invalid = |field: &str, v: &Value, e: &dyn std::fmt::Display| {
            ApiError::invalid(
                "",
                "Service",
                name,
                vec![Cause::invalid(field, v, &e.to_string())],
            )
        };
        let ty = obj["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_string();
        if ty != "ExternalName" && old.is_none() {
            let ip_field = obj["spec"]["clusterIP"].clone();
            match ip_field.as_str() {
                Some("None") => {
                    obj["spec"]["clusterIPs"] = json!(["None"]);
                }
                Some(s) if !s.is_empty() => {
                    let ip: Ipv4Addr = s.parse().map_err(|_| {
                        invalid("spec.clusterIP", &ip_field, &"must be a valid IP address")
                    })?;
                    self.ips
                        .lock()
                        .expect("allocator lock")
                        .allocate(ip)
                        .map_err(|e| invalid("spec.clusterIPs[0]", &ip_field, &e))?;
                    taken.push(Alloc::Ip(ip));
                    obj["spec"]["clusterIPs"] = json!([s]);
                }
                _ => {
                    let ip = self
                        .ips
                        .lock()
                        .expect("allocator lock")
                        .allocate_next()
                        .map_err(|e| {
                            ApiError::internal(format!("failed to allocate a serviceIP: {e}"))
                        })?;
                    taken.push(Alloc::Ip(ip));
                    obj["spec"]["clusterIP"] = json!(ip.to_string());
                    obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
                }
            }
        }
        let needs_node_ports = ty == "NodePort" || ty == "LoadBalancer";
        let old_ports: Vec<u16> = old
            .and_then(|o| o["spec"]["ports"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|p| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
            .collect();
        if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
            for (i, p) in ports.iter_mut().enumerate() {
                if !needs_node_ports {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                    continue;
                }
                match p["nodePort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0)
                {
                    Some(np) if old_ports.contains(&np) => {}
                    Some(np) => {
                        if let Err(e) = self.ports.lock().expect("allocator lock").allocate(np) {
                            self.release(&taken);
                            return Err(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                &json!(np),
                                &e,
                            ));
                        }
                        taken.push(Alloc::Port(np));
                    }
                    None => match self.ports.lock().expect("allocator lock").allocate_next() {
                        Ok(np) => {
                            taken.push(Alloc::Port(np));
                            p["nodePort"] = json!(np);
                        }
                        Err(e) => {
                            self.release(&taken);
                            return Err(ApiError::internal(format!(
                                "failed to allocate a nodePort: {e}"
                            )));
                        }
                    },
                }
            }
        }
        Ok(taken)
    }

    fn release(&self, allocs: &[Alloc]) {
        for a in allocs {
            match a {
                Alloc::Ip(ip) => self.ips.lock().expect("allocator lock").release(*ip),
                Alloc::Port(p) => self.ports.lock().expect("allocator lock").release(*p),
            }
        }
    }

    fn service_allocs(svc: &Value) -> Vec<Alloc> {
        let mut out = Vec::new();
        if let Some(ip) = svc["spec"]["clusterIP"]
            .as_str()
            .and_then(|s| s.parse().ok())
        {
            out.push(Alloc::Ip(ip));
        }
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(np) = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()) {
                out.push(Alloc::Port(np));
            }
        }
        out
    }

    /// PUT: full replacement (or of `.status` / `spec.finalizers` for subresources).
    async fn update(
        &self,
        req: &Req,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
    ) -> ApiResult<(Value, Vec<String>)> {
        let body = parse_body(req)?;
        let (obj, warnings) = decode(r, &body, field_validation(req)?)?;
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
        let (current, kv) = self.get(r, ns, name).await?;
        if let Some(rv) = &want_rv
            && *rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::stale(r.group, r.plural, name));
        }
        let v = self
            .write_update(req, r, ns, name, &current, &kv, obj, sub)
            .await?;
        Ok((v, warnings))
    }

    /// Shared tail of PUT and PATCH: merge preserved fields, default, validate, bump
    /// generation, compare-and-swap. A no-op write returns the current object unchanged.
    #[allow(
        clippy::too_many_arguments,
        reason = "the shared tail of PUT and PATCH takes what both already hold; issue 8's typed verb options replace it"
    )]
    async fn write_update(
        &self,
        req: &Req,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
        current: &Value,
        kv: &KeyValue,
        obj: Value,
        sub: Option<Subresource>,
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
            _ => {
                let mut n = obj;
                if has_status_sub(r) {
                    n["status"] = current.get("status").cloned().unwrap_or(Value::Null);
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
            m.remove("managedFields");
            m.insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        }
        admission::default_object(r.kind, &mut new);
        let mut causes = admission::validate(r.kind, &new, self.config.node_port_range);
        causes.extend(admission::validate_update(r.kind, current, &new));
        if !causes.is_empty() {
            return Err(ApiError::invalid(r.group, r.kind, name, causes));
        }
        if uses_generation(r) && spec_view(current) != spec_view(&new) {
            let g = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta(&mut new).insert("generation".into(), json!(g));
        }
        if *current == new {
            return Ok(new);
        }
        let mut allocated = Vec::new();
        if r.kind == "Service" {
            if new["spec"]["clusterIP"].is_null() {
                new["spec"]["clusterIP"] = current["spec"]["clusterIP"].clone();
                new["spec"]["clusterIPs"] = current["spec"]["clusterIPs"].clone();
            }
            allocated = self.allocate_service(&mut new, Some(current), name)?;
        }
        if req.dry_run() {
            self.release(&allocated);
            return Ok(new);
        }
        let deleting = new["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|d| !d.is_null());
        let finalizers_empty = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
            && (r.kind != "Namespace"
                || new["spec"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty));
        let key = r.key(ns, name);
        if deleting
            && finalizers_empty
            && !(r.kind == "Pod"
                && new["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0)
                    > 0)
        {
            return match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(prev) => {
                    self.on_removed(r, &decorate(r, &prev)?);
                    Ok(new)
                }
                Err(StoreError::Conflict { .. }) => Err(ApiError::stale(r.group, r.plural, name)),
                Err(StoreError::NotFound { .. }) => {
                    Err(ApiError::not_found(r.group, r.plural, name))
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
                if r.kind == "Service" {
                    // NodePorts the new spec no longer carries go back to the pool.
                    let keep = Self::service_allocs(&new);
                    let gone: Vec<Alloc> = Self::service_allocs(current)
                        .into_iter()
                        .filter(|a| !keep.contains(a))
                        .collect();
                    self.release(&gone);
                }
                decorate(r, &kv)
            }
            Err(e) => {
                self.release(&allocated);
                match e {
                    StoreError::Conflict { .. } => Err(ApiError::stale(r.group, r.plural, name)),
                    StoreError::NotFound { .. } => {
                        Err(ApiError::not_found(r.group, r.plural, name))
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
    async fn patch(
        &self,
        req: &Req,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
    ) -> ApiResult<Value> {
        let patch_type = patch_type(req)?;
        let patch: Value = serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let mode = field_validation(req)?;
        let pinned = pins_resource_version(patch_type, &patch);
        let retries = Retries::new();
        loop {
            let (current, kv) = self.get(r, ns, name).await?;
            let patched = apply_patch(patch_type, &current, &patch, r.kind)?;
            if !patched.is_object() {
                return Err(ApiError::bad_request(
                    "the patch must produce a JSON object",
                ));
            }
            if pinned
                && patched["metadata"]["resourceVersion"].as_str()
                    != Some(kv.mod_revision.to_string().as_str())
            {
                return Err(ApiError::stale(r.group, r.plural, name));
            }
            let (obj, _) = decode(r, &patched, mode)?;
            match self
                .write_update(req, r, ns, name, &current, &kv, obj, sub)
                .await
            {
                Err(e) if is_write_conflict(&e) && !pinned => retries.again(r, name)?,
                other => return other,
            }
        }
    }

    async fn write_scale(
        &self,
        req: &Req,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Response> {
        let retries = Retries::new();
        loop {
            let (current, kv) = self.get(r, ns, name).await?;
            let view = scale_view(&current);
            let scale = if req.method == Method::PATCH {
                let patch: Value = serde_json::from_slice(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                apply_patch(patch_type(req)?, &view, &patch, "Scale")?
            } else {
                parse_body(req)?
            };
            if let Some(rv) = scale["metadata"]["resourceVersion"]
                .as_str()
                .filter(|s| !s.is_empty())
                && rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::stale(r.group, r.plural, name));
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
            new["spec"]["replicas"] = json!(replicas);
            match self
                .write_update(req, r, ns, name, &current, &kv, new, None)
                .await
            {
                Ok(v) => return Ok(json_response(200, &scale_view(&v))),
                Err(e) if is_write_conflict(&e) => retries.again(r, name)?,
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST pods/{name}/binding`: assign the pod to a node, once.
    async fn bind(
        &self,
        req: &Req,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Response> {
        let body = parse_body(req)?;
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
            if current["metadata"]
                .get("deletionTimestamp")
                .is_some_and(|d| !d.is_null())
            {
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
            if req.dry_run() {
                break;
            }
            match self
                .store
                .update(&r.key(ns, name), encode(r, &new), kv.mod_revision)
                .await
            {
                Ok(_) => break,
                // Another write won: bind against the fresh pod (it may be bound by now).
                Err(StoreError::Conflict { .. }) => retries.again(r, name)?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    /// DELETE of one object, with graceful pod deletion, finalizers and propagation policy.
    pub(super) async fn delete(
        &self,
        r: &'static Resource,
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
                    r.group,
                    r.plural,
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
                    r.group,
                    r.plural,
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
            let already = current["metadata"]
                .get("deletionTimestamp")
                .is_some_and(|d| !d.is_null());
            // Graceful deletion: bound, running pods get time to stop; the kubelet finishes.
            let mut grace = 0;
            if r.kind == "Pod" {
                let bound = current["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty());
                let terminal = matches!(
                    current["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                );
                grace = opts.grace.unwrap_or_else(|| {
                    current["spec"]["terminationGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(30)
                });
                if !bound || terminal {
                    grace = 0;
                }
                if already {
                    let existing = current["metadata"]["deletionGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(0);
                    grace = grace.min(existing);
                }
            }
            let namespace_wait = r.kind == "Namespace"
                && current["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
            if finalizers.is_empty() && grace == 0 && !namespace_wait {
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
                        self.on_removed(r, &v);
                        return Ok((200, v));
                    }
                    Err(StoreError::Conflict { .. }) => retries.again(r, name)?,
                    Err(StoreError::NotFound { .. }) => {
                        return Err(ApiError::not_found(r.group, r.plural, name));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            {
                let m = meta(&mut new);
                if !already || r.kind == "Pod" {
                    let ts = if grace > 0 {
                        let t = k8s_openapi::jiff::Timestamp::now().as_second() + grace;
                        k8s_openapi::jiff::Timestamp::from_second(t)
                            .map_or_else(|_| now(), |t| t.to_string())
                    } else {
                        now()
                    };
                    if !already
                        || grace
                            < current["metadata"]["deletionGracePeriodSeconds"]
                                .as_i64()
                                .unwrap_or(0)
                    {
                        m.insert("deletionTimestamp".into(), json!(ts));
                    }
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                m.insert("finalizers".into(), json!(finalizers));
                if finalizers.is_empty() {
                    m.remove("finalizers");
                }
            }
            if r.kind == "Namespace" {
                new["status"]["phase"] = json!("Terminating");
            }
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
                    return Ok((
                        if grace > 0 || !finalizers.is_empty() || namespace_wait {
                            202
                        } else {
                            200
                        },
                        decorate(r, &kv)?,
                    ));
                }
                Err(StoreError::Conflict { .. }) => retries.again(r, name)?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Bookkeeping once an object has left the store.
    fn on_removed(&self, r: &Resource, obj: &Value) {
        if r.kind == "Service" {
            self.release(&Self::service_allocs(obj));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alloc {
    Ip(Ipv4Addr),
    Port(u16),
}

/// How long a write without a resourceVersion precondition keeps retrying against fresh
/// state while other writers keep winning (upstream bounds `GuaranteedUpdate` only by the
/// request's deadline).
const GUARANTEED_UPDATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// The retry budget of one `GuaranteedUpdate`-style write.
struct Retries {
    deadline: std::time::Instant,
}

impl Retries {
    fn new() -> Self {
        Self {
            deadline: std::time::Instant::now() + GUARANTEED_UPDATE_DEADLINE,
        }
    }

    /// After a conflicting write: `Ok` to try again with fresh state, or the 409 once writers
    /// have kept winning past the deadline.
    fn again(&self, r: &Resource, name: &str) -> ApiResult<()> {
        if std::time::Instant::now() < self.deadline {
            Ok(())
        } else {
            Err(ApiError::conflict(
                r.group,
                r.plural,
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
fn pins_resource_version(t: PatchType, patch: &Value) -> bool {
    match t {
        PatchType::Json => patch.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op["path"] == "/metadata/resourceVersion"
                    && matches!(op["op"].as_str(), Some("add" | "replace"))
            })
        }),
        PatchType::Merge | PatchType::Strategic => !patch["metadata"]["resourceVersion"].is_null(),
    }
}

#[derive(Debug, Clone, Copy)]
enum PatchType {
    Json,
    Merge,
    Strategic,
}

fn patch_type(req: &Req) -> ApiResult<PatchType> {
    let ct = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let base = ct.split(';').next().unwrap_or_default().trim();
    match base {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
        ))),
    }
}

fn apply_patch(t: PatchType, current: &Value, patch: &Value, kind: &str) -> ApiResult<Value> {
    match t {
        PatchType::Json => sluice_patch::json_patch(current, patch).map_err(|e| {
            ApiError::invalid(
                "",
                kind,
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
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            }
            sluice_patch::strategic_merge_patch(current, patch, kind)
                .map_err(|e| ApiError::bad_request(e.to_string()))
        }
    }
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

pub(super) struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub(super) fn from_req(req: &Req, r: &Resource) -> ApiResult<Self> {
        let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(
            req.q("fieldSelector").unwrap_or_default(),
            r.kind,
            allowed_fields(r.kind),
        )
        .map_err(ApiError::bad_request)?;
        Ok(Self { labels, fields })
    }

    pub(super) fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj["metadata"].get("labels")) && self.fields.matches(obj)
    }
}

/// A consistent page of matching objects.
pub(super) async fn list_objects(
    srv: &ApiServer,
    req: &Req,
    r: &Resource,
    ns: Option<&str>,
    sel: &Selectors,
) -> ApiResult<(Vec<Value>, i64, Option<String>)> {
    let limit: Option<usize> = req
        .q("limit")
        .map(|l| {
            l.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))
        })
        .transpose()?
        .filter(|l| *l > 0);
    let prefix = r.list_prefix(ns);
    let (mut rev, mut start) = match req.q("continue") {
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
    let mut items = Vec::new();
    loop {
        // Without selectors every key is an item: read exactly what the page needs.
        let unfiltered = sel.labels.is_empty() && sel.fields.is_empty();
        let chunk = limit.map(|l| (l - items.len()).max(1) * if unfiltered { 1 } else { 2 });
        let res = match srv.store.range(&prefix, start.as_deref(), chunk, rev).await {
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
            let v = super::decorate(r, kv)?;
            if sel.matches(&v) {
                items.push(v);
            }
            if limit.is_some_and(|l| items.len() >= l) {
                let more = res.more || i + 1 < n;
                let token = more.then(|| encode_continue(res.revision, &kv.key));
                return Ok((items, res.revision, token));
            }
        }
        if !res.more {
            return Ok((items, res.revision, None));
        }
        start = res.kvs.last().map(|kv| kv.key.clone());
    }
}

async fn list(
    srv: &Arc<ApiServer>,
    req: &Req,
    r: &'static Resource,
    ns: Option<&str>,
) -> ApiResult<Response> {
    let sel = Selectors::from_req(req, r)?;
    let (items, rev, cont) = list_objects(srv, req, r, ns, &sel).await?;
    if req.wants_table() {
        return Ok(json_response(
            200,
            &table::table(r, &items, true, req, Some(rev), cont),
        ));
    }
    let mut metadata = json!({"resourceVersion": rev.to_string()});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    if req.wants_metadata_only() {
        let items: Vec<Value> = items.iter().map(partial_metadata).collect();
        return Ok(json_response(
            200,
            &json!({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items,
            }),
        ));
    }
    Ok(json_response(
        200,
        &json!({
            "kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": metadata, "items": items,
        }),
    ))
}

async fn delete_collection(
    srv: &Arc<ApiServer>,
    req: &Req,
    r: &'static Resource,
    ns: Option<&str>,
) -> ApiResult<Response> {
    let sel = Selectors::from_req(req, r)?;
    let opts = DeleteOptions::from_req(req)?;
    let prefix = r.list_prefix(ns);
    let all = srv.store.range(&prefix, None, None, None).await?;
    let mut deleted = Vec::new();
    for kv in &all.kvs {
        let v = decorate(r, kv)?;
        if !sel.matches(&v) {
            continue;
        }
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let obj_ns = v["metadata"]["namespace"].as_str().map(String::from);
        match srv.delete(r, obj_ns.as_deref(), &name, &opts).await {
            Ok((_, v)) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        200,
        &json!({"kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": {"resourceVersion": all.revision.to_string()}, "items": deleted}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/registry/pods/default/a");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "/registry/pods/default/a".to_string())
        );
        assert_eq!(decode_continue("!!!").unwrap_err().code, 400);
    }

    #[test]
    fn scale_view_carries_selector_string() {
        let d = json!({"metadata": {"name": "d", "namespace": "x", "resourceVersion": "5"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_view(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "5");
    }

    #[test]
    fn generated_suffix_alphabet() {
        let s = generate_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| GENERATE_ALPHABET.contains(&b)));
    }
}
