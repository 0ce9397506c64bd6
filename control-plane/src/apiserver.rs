//! The Kubernetes REST API over the store: routing, the verbs, and the object lifecycle
//! (uid, timestamps, generation, resourceVersion, finalizers, graceful deletion).

mod admission;
pub mod alloc;
mod allocations;
mod apply;
mod crd;
mod discovery;
mod eviction;
mod http;
mod kubelet;
pub mod options;
mod protobuf;
mod proxy;
pub mod selectors;
pub mod status;
mod table;
mod verbs;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_store::{KeyValue, Store};

use crate::registry::validation::{is_dns1123_label, path_segment_problems};
use crate::registry::{Registry, Resource, Subresource};
use alloc::Ipv4Net;
use allocations::Allocations;
use options::Query;
use status::{ApiError, ApiResult};

/// The largest request body accepted (upstream's `MaxRequestBodyBytes`, 3 MiB).
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// API server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Range `ClusterIPs` are allocated from.
    pub service_cidr: Ipv4Net,
    /// Range `NodePorts` are allocated from.
    pub node_port_range: (u16, u16),
    /// Where clients reach this server (the `kubernetes` Service's endpoint).
    pub advertise: SocketAddr,
    /// Watches last between this and twice this, unless the client asks for less.
    pub min_request_timeout: Duration,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// The `kube-system/kube-dns` Service address (every node agent answers it itself);
    /// `None`: no cluster DNS Service.
    pub cluster_dns: Option<std::net::Ipv4Addr>,
    /// Whether `pods/proxy`, `services/proxy` and `nodes/proxy` may reach loopback
    /// addresses (tests, whose fake pods listen on 127.0.0.1). Off, as upstream refuses them.
    pub proxy_loopback: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service_cidr: "10.96.0.0/12".parse().expect("valid default"),
            node_port_range: (30000, 32767),
            advertise: SocketAddr::from(([127, 0, 0, 1], 6443)),
            min_request_timeout: Duration::from_mins(30),
            bookmark_interval: Duration::from_mins(1),
            cluster_dns: Some(std::net::Ipv4Addr::new(10, 96, 0, 10)),
            proxy_loopback: false,
        }
    }
}

/// The API server: state shared by every request.
pub struct ApiServer {
    store: Arc<dyn Store>,
    config: Config,
    registry: Registry,
    allocations: Allocations,
}

/// Where a request points.
#[derive(Debug)]
enum Target {
    Collection {
        r: Arc<Resource>,
        ns: Option<String>,
    },
    Object {
        r: Arc<Resource>,
        ns: Option<String>,
        name: String,
        sub: Option<Subresource>,
    },
    /// A `connect` subresource (exec, attach, portforward, proxy): the request goes on whole.
    Connect {
        r: Arc<Resource>,
        ns: Option<String>,
        name: String,
        sub: Subresource,
        /// How many path segments follow the subresource (`proxy/{path...}`).
        tail: usize,
    },
}

/// The parsed parts of a request whose body has been read.
pub(crate) struct Req {
    method: Method,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k)
    }

    /// The manager a write without `fieldManager=` is recorded under: the User-Agent's
    /// product, as upstream derives it.
    fn default_manager(&self) -> String {
        let ua = self
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        sluice_apply::manager_from_user_agent(ua)
    }

    fn write_options(&self) -> ApiResult<options::WriteOptions> {
        let mut o = self.query.write_options()?;
        o.field_manager
            .get_or_insert_with(|| self.default_manager());
        Ok(o)
    }

    fn patch_options(&self) -> ApiResult<options::PatchOptions> {
        let mut o = self.query.patch_options(self.content_type())?;
        o.write
            .field_manager
            .get_or_insert_with(|| self.default_manager());
        Ok(o)
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    /// The client asked for metadata only (`as=PartialObjectMetadata[List]`).
    fn wants_metadata_only(&self) -> bool {
        self.headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }
}

/// RFC 3339 "now" at second precision, as `metav1.Time` is written.
pub(crate) fn now() -> String {
    let ts = k8s_openapi::jiff::Timestamp::now();
    let secs = ts.as_second();
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map_or_else(|_| ts.to_string(), |t| t.to_string())
}

/// The object JSON as clients see it: the stored bytes with `resourceVersion` set.
pub(crate) fn decorate(r: &Resource, kv: &KeyValue) -> ApiResult<Value> {
    decorate_at(r, kv, kv.mod_revision)
}

pub(crate) fn decorate_at(r: &Resource, kv: &KeyValue, rv: i64) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    let mut v = r.strategy.decode_stored(v);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    Ok(v)
}

/// Bytes to store: everything but the derived `resourceVersion`.
pub(crate) fn encode(r: &Resource, obj: &Value) -> Bytes {
    let mut v = r.strategy.encode_stored(obj.clone());
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    Bytes::from(serde_json::to_vec(&v).expect("JSON values always serialize"))
}

/// The `PartialObjectMetadata` view of an object.
pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

pub(crate) fn json_response(code: u16, v: &Value) -> Response {
    let code = axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::OK);
    (
        code,
        [("content-type", "application/json")],
        format!("{v}\n"),
    )
        .into_response()
}

impl ApiServer {
    /// Open the server over a store: rebuild allocators from stored Services, and create the
    /// default namespaces and the `kubernetes` Service if missing.
    pub async fn new(store: Arc<dyn Store>, config: Config) -> ApiResult<Arc<Self>> {
        let srv = Arc::new(Self {
            allocations: Allocations::new(config.service_cidr, config.node_port_range),
            registry: Registry::builtin(),
            store,
            config,
        });
        srv.repair_allocations().await?;
        srv.serve_crds().await?;
        srv.bootstrap().await?;
        Ok(srv)
    }

    /// The store (for the compactor and tests).
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The served resources.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A built-in resource the server itself relies on.
    pub(crate) fn resource(&self, group: &str, version: &str, plural: &str) -> Arc<Resource> {
        self.registry
            .find(group, version, plural)
            .unwrap_or_else(|| panic!("built-in resource {group}/{version} {plural} is served"))
    }

    async fn bootstrap(self: &Arc<Self>) -> ApiResult<()> {
        let ns_r = self.resource("", "v1", "namespaces");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if self.store.get(&ns_r.key(None, ns)).await?.is_none() {
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                self.create_internal(&ns_r, None, body).await?;
            }
        }
        // The built-in PriorityClasses, as upstream's bootstrap hook creates them.
        let pc_r = self.resource("scheduling.k8s.io", "v1", "priorityclasses");
        for (name, ..) in crate::registry::kinds::priorityclass::SYSTEM_PRIORITY_CLASSES {
            if self.store.get(&pc_r.key(None, name)).await?.is_none()
                && let Some(body) =
                    crate::registry::kinds::priorityclass::system_priority_class(name)
            {
                match self.create_internal(&pc_r, None, body).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let svc_r = self.resource("", "v1", "services");
        if self
            .store
            .get(&svc_r.key(Some("default"), "kubernetes"))
            .await?
            .is_none()
        {
            let ip = alloc::first_service_ip(self.config.service_cidr).to_string();
            let body = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                    "targetPort": self.config.advertise.port()}]}});
            self.create_internal(&svc_r, Some("default"), body).await?;
        }
        if let Some(dns) = self.config.cluster_dns
            && self
                .store
                .get(&svc_r.key(Some("kube-system"), "kube-dns"))
                .await?
                .is_none()
        {
            // No selector: the node agents serve this address themselves (node-local DNS).
            let body = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "sluice-dns",
                        "kubernetes.io/cluster-service": "true"}},
                "spec": {"clusterIP": dns.to_string(), "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}});
            self.create_optional(
                &svc_r,
                "kube-system",
                body,
                &format!("no kube-dns Service ({dns} is taken)"),
            )
            .await?;
        }
        let ep_r = self.resource("", "v1", "endpoints");
        if self
            .store
            .get(&ep_r.key(Some("default"), "kubernetes"))
            .await?
            .is_none()
        {
            let body = json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": self.config.advertise.ip().to_string()}],
                    "ports": [{"name": "https", "port": self.config.advertise.port(), "protocol": "TCP"}]}]});
            self.create_internal(&ep_r, Some("default"), body).await?;
        }
        // Upstream's apiserver keeps an EndpointSlice for its Service too: what service
        // proxies (ours included) read to send `kubernetes.default` to the API server.
        let slice_r = self.resource("discovery.k8s.io", "v1", "endpointslices");
        if let std::net::IpAddr::V4(ip) = self.config.advertise.ip()
            && self
                .store
                .get(&slice_r.key(Some("default"), "kubernetes"))
                .await?
                .is_none()
        {
            let body = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": self.config.advertise.port(), "protocol": "TCP"}]});
            self.create_optional(
                &slice_r,
                "default",
                body,
                &format!("no EndpointSlice for the kubernetes Service ({ip})"),
            )
            .await?;
        }
        Ok(())
    }

    /// Creates a bootstrap object the cluster works without: one that already exists
    /// (409) is fine, one validation refuses (422) is a warning (`missing` says what the
    /// cluster then lacks), anything else fails the bootstrap.
    async fn create_optional(
        self: &Arc<Self>,
        r: &Resource,
        ns: &str,
        body: Value,
        missing: &str,
    ) -> ApiResult<()> {
        match self.create_internal(r, Some(ns), body).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) if e.code == 422 => {
                tracing::warn!(message = %e.message, "{missing}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn create_internal(
        self: &Arc<Self>,
        r: &Resource,
        ns: Option<&str>,
        body: Value,
    ) -> ApiResult<Value> {
        let (v, _) = self
            .create(r, ns, &body, &options::WriteOptions::default())
            .await?;
        Ok(v)
    }

    /// The HTTP router: every path goes through one dispatcher that parses Kubernetes URLs.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(dispatch).with_state(self)
    }

    /// Compact the store to `revision` (used by the periodic compactor and by tests through
    /// `POST /sluice/compact`).
    pub async fn compact(&self, revision: i64) -> ApiResult<()> {
        self.store.compact(revision).await?;
        Ok(())
    }

    /// Run forever: every `interval`, compact to the revision seen one interval ago (so
    /// watchers have at least one interval of history to resume from).
    pub async fn run_compactor(self: Arc<Self>, interval: Duration) {
        let mut last: Option<i64> = None;
        loop {
            tokio::time::sleep(interval).await;
            if let Some(rev) = last
                && let Err(e) = self.store.compact(rev).await
            {
                tracing::warn!(error = %e, "compaction failed");
            }
            last = self.store.current_revision().await.ok();
        }
    }
}

async fn dispatch(State(srv): State<Arc<ApiServer>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match route(&srv, request).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(path = %path, method = %method, message = %e.message, "request failed");
            }
            e.into_response()
        }
    }
}

/// Read the body of a request that is not upgraded, refusing one over the limit.
async fn read(request: Request) -> ApiResult<Req> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"),
            )
        })?;
    Ok(Req {
        method: parts.method,
        query: Query::parse(parts.uri.query()),
        headers: parts.headers,
        body,
    })
}

/// Route by path. The request stays whole (upgradable) until the route is known: only
/// ordinary verbs read the body; streaming subresources will take the request as it is.
async fn route(srv: &Arc<ApiServer>, request: Request) -> ApiResult<Response> {
    let path = request.uri().path().to_string();
    // Split the raw path, then decode each segment: an encoded '/' stays inside its segment
    // (and is refused there as part of a name), as upstream sees segments.
    let decoded: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let method = request.method().clone();
    match segs.as_slice() {
        ["version"] => return Ok(json_response(200, &discovery::version())),
        ["healthz" | "livez" | "readyz", ..] => {
            return Ok((axum::http::StatusCode::OK, "ok").into_response());
        }
        ["api"] => {
            return Ok(json_response(
                200,
                &discovery::api_versions(srv.config.advertise),
            ));
        }
        ["apis"] => {
            return Ok(json_response(
                200,
                &discovery::api_group_list(&srv.registry),
            ));
        }
        ["api", v] => {
            return discovery::resource_list(&srv.registry, "", v).map(|v| json_response(200, &v));
        }
        ["apis", g] => {
            return discovery::api_group(&srv.registry, g).map(|v| json_response(200, &v));
        }
        ["apis", g, v] => {
            return discovery::resource_list(&srv.registry, g, v).map(|v| json_response(200, &v));
        }
        ["openapi", "v3"] => {
            return Ok(json_response(200, &discovery::openapi_index(&srv.registry)));
        }
        ["openapi", "v3", rest @ ..] => {
            return discovery::openapi_doc(&srv.registry, &rest.join("/"))
                .map(|v| json_response(200, &v));
        }
        ["sluice", "compact"] if method == Method::POST => {
            let rev = srv.store.current_revision().await?;
            srv.compact(rev).await?;
            return Ok(json_response(200, &json!({"compacted": rev})));
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(&path)),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let target = parse_target(&srv.registry, group, version, rest)
        .ok_or_else(|| ApiError::no_route(&path))?;
    check_segments(&target)?;
    if let Target::Connect {
        r,
        ns,
        name,
        sub,
        tail,
    } = target
    {
        let tail = raw_tail(&path, tail);
        let at = proxy::At {
            r: &r,
            ns: ns.as_deref(),
            name: &name,
            sub,
            tail: &tail,
        };
        return proxy::serve(srv, &at, request).await;
    }
    let req = read(request).await?;
    let watching = legacy_watch || matches!(req.q("watch"), Some("true" | "1"));
    http::serve(srv, &req, target, watching).await
}

/// The last `n` segments of the raw (still percent-encoded) path, as the path a proxy
/// passes on: `/a/b`, with a trailing slash kept.
fn raw_tail(path: &str, n: usize) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = String::new();
    for s in &segs[segs.len().saturating_sub(n)..] {
        out.push('/');
        out.push_str(s);
    }
    if path.ends_with('/') || out.is_empty() {
        out.push('/');
    }
    out
}

/// Namespace and name segments are validated before anything uses them as store keys (as
/// upstream's `IsValidPathSegmentName` and namespace name rules).
fn check_segments(target: &Target) -> ApiResult<()> {
    let (ns, name) = match target {
        Target::Collection { ns, .. } => (ns.as_deref(), None),
        Target::Object { ns, name, .. } | Target::Connect { ns, name, .. } => {
            (ns.as_deref(), Some(name.as_str()))
        }
    };
    if let Some(ns) = ns
        && !is_dns1123_label(ns)
    {
        return Err(ApiError::bad_request(format!(
            "namespace parameter invalid: {ns:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        )));
    }
    if let Some(name) = name {
        let problems = path_segment_problems(name);
        if !problems.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Name parameter invalid: {name:?}: {}",
                problems.join(";")
            )));
        }
    }
    Ok(())
}

fn parse_target(reg: &Registry, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let find = |plural: &str| reg.find(group, version, plural);
    let sub = |s: &str| -> Option<Option<Subresource>> { Subresource::parse(s).map(Some) };
    let obj = |r: Arc<Resource>, ns: Option<&str>, name: &str, s: Option<&str>| -> Option<Target> {
        let sub = match s {
            None => None,
            Some(s) => {
                let x = sub(s)??;
                if !r.has(x) {
                    return None;
                }
                Some(x)
            }
        };
        if let Some(sub) = sub.filter(|s| s.is_connect()) {
            return Some(Target::Connect {
                r,
                ns: ns.map(String::from),
                name: name.to_string(),
                sub,
                tail: 0,
            });
        }
        Some(Target::Object {
            r,
            ns: ns.map(String::from),
            name: name.to_string(),
            sub,
        })
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if group.is_empty() || find(plural).is_some() => {
            // `/api/v1/namespaces/{name}/{status|finalize}` is the namespace itself.
            if group.is_empty() && tail.is_empty() && (*plural == "status" || *plural == "finalize")
            {
                let r = find("namespaces")?;
                return obj(r, None, ns, Some(plural));
            }
            let r = find(plural)?;
            if !r.namespaced {
                return None;
            }
            match tail {
                [] => Some(Target::Collection {
                    r,
                    ns: Some((*ns).to_string()),
                }),
                [name] => obj(r, Some(ns), name, None),
                [name, s] => obj(r, Some(ns), name, Some(s)),
                [name, "proxy", path @ ..] => {
                    proxy_target(obj(r, Some(ns), name, Some("proxy"))?, path.len())
                }
                _ => None,
            }
        }
        [plural] => Some(Target::Collection {
            r: find(plural)?,
            ns: None,
        }),
        [plural, name] => {
            let r = find(plural)?;
            if r.namespaced {
                return None;
            }
            obj(r, None, name, None)
        }
        [plural, name, s] => {
            let r = find(plural)?;
            if r.namespaced {
                return None;
            }
            obj(r, None, name, Some(s))
        }
        [plural, name, "proxy", path @ ..] => {
            let r = find(plural)?;
            if r.namespaced {
                return None;
            }
            proxy_target(obj(r, None, name, Some("proxy"))?, path.len())
        }
        _ => None,
    }
}

/// A `proxy` target with `tail` path segments after the subresource.
fn proxy_target(t: Target, tail: usize) -> Option<Target> {
    match t {
        Target::Connect {
            r, ns, name, sub, ..
        } => Some(Target::Connect {
            r,
            ns,
            name,
            sub,
            tail,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(g: &str, v: &str, p: &str) -> String {
        let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
        let reg = Registry::builtin();
        format!(
            "{:?}",
            parse_target(&reg, g, v, &segs).map(|t| match t {
                Target::Collection { r, ns } => format!("C {} {ns:?}", r.plural),
                Target::Object { r, ns, name, sub } =>
                    format!("O {} {ns:?} {name} {sub:?}", r.plural),
                Target::Connect {
                    r,
                    ns,
                    name,
                    sub,
                    tail,
                } => format!("X {} {ns:?} {name} {sub:?} {tail}", r.plural),
            })
        )
    }

    #[test]
    fn url_shapes() {
        assert_eq!(t("", "v1", "pods"), "Some(\"C pods None\")");
        assert_eq!(
            t("", "v1", "namespaces/default/pods"),
            "Some(\"C pods Some(\\\"default\\\")\")"
        );
        assert_eq!(
            t("", "v1", "namespaces/default/pods/a/status"),
            "Some(\"O pods Some(\\\"default\\\") a Some(Status)\")"
        );
        assert_eq!(
            t("", "v1", "namespaces/default/pods/a/binding"),
            "Some(\"O pods Some(\\\"default\\\") a Some(Binding)\")"
        );
        assert_eq!(
            t("", "v1", "namespaces/default"),
            "Some(\"O namespaces None default None\")"
        );
        assert_eq!(
            t("", "v1", "namespaces/default/finalize"),
            "Some(\"O namespaces None default Some(Finalize)\")"
        );
        assert_eq!(t("", "v1", "namespaces"), "Some(\"C namespaces None\")");
        assert_eq!(
            t("", "v1", "nodes/n1/status"),
            "Some(\"O nodes None n1 Some(Status)\")"
        );
        assert_eq!(
            t("apps", "v1", "namespaces/x/deployments/d/scale"),
            "Some(\"O deployments Some(\\\"x\\\") d Some(Scale)\")"
        );
        assert_eq!(t("", "v1", "namespaces/x/pods/a/scale"), "None");
        assert_eq!(t("", "v1", "namespaces/x/nodes"), "None");
        assert_eq!(t("", "v1", "pods/a"), "None");
        assert_eq!(
            t("", "v1", "namespaces/x/pods/a/exec"),
            "Some(\"X pods Some(\\\"x\\\") a Exec 0\")"
        );
        assert_eq!(
            t("", "v1", "namespaces/x/pods/a:8080/proxy/metrics/x"),
            "Some(\"X pods Some(\\\"x\\\") a:8080 Proxy 2\")"
        );
        assert_eq!(
            t("", "v1", "namespaces/x/services/http:s:web/proxy"),
            "Some(\"X services Some(\\\"x\\\") http:s:web Proxy 0\")"
        );
        assert_eq!(
            t("", "v1", "nodes/n1/proxy/stats/summary"),
            "Some(\"X nodes None n1 Proxy 2\")"
        );
        assert_eq!(
            t("", "v1", "namespaces/x/pods/a/ephemeralcontainers"),
            "Some(\"O pods Some(\\\"x\\\") a Some(EphemeralContainers)\")"
        );
        assert_eq!(t("", "v1", "namespaces/x/pods/a/exec/more"), "None");
        assert_eq!(t("", "v1", "namespaces/x/configmaps/a/proxy"), "None");
        assert_eq!(raw_tail("/api/v1/nodes/n/proxy", 0), "/");
        assert_eq!(raw_tail("/api/v1/nodes/n/proxy/", 0), "/");
        assert_eq!(raw_tail("/api/v1/nodes/n/proxy/a%2Fb/c/", 2), "/a%2Fb/c/");
        assert_eq!(t("apps", "v1", "namespaces/x/widgets"), "None");
    }
}
