//! The Kubernetes REST API over the store: routing, the verbs, and the object lifecycle
//! (uid, timestamps, generation, resourceVersion, finalizers, graceful deletion).

pub mod admission;
pub mod alloc;
mod discovery;
mod handlers;
pub mod selectors;
pub mod status;
mod table;
mod watch;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_store::{KeyValue, Store};

use crate::registry::{self, Resource, Subresource};
use alloc::{IpAllocator, Ipv4Net, PortAllocator};
use status::{ApiError, ApiResult};

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service_cidr: "10.96.0.0/12".parse().expect("valid default"),
            node_port_range: (30000, 32767),
            advertise: SocketAddr::from(([127, 0, 0, 1], 6443)),
            min_request_timeout: Duration::from_mins(30),
            bookmark_interval: Duration::from_mins(1),
        }
    }
}

/// The API server: state shared by every request.
pub struct ApiServer {
    store: Arc<dyn Store>,
    config: Config,
    ips: Mutex<IpAllocator>,
    ports: Mutex<PortAllocator>,
}

/// Where a request points.
#[derive(Debug)]
enum Target {
    Collection {
        r: &'static Resource,
        ns: Option<String>,
    },
    Object {
        r: &'static Resource,
        ns: Option<String>,
        name: String,
        sub: Option<Subresource>,
    },
}

/// The parsed parts of a request.
pub(crate) struct Req {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
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

    fn dry_run(&self) -> bool {
        self.q("dryRun").is_some()
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
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    if let Some(convert) = r.from_storage {
        v = convert(v);
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    Ok(v)
}

/// Bytes to store: everything but the derived `resourceVersion`.
pub(crate) fn encode(r: &Resource, obj: &Value) -> Bytes {
    let mut v = match r.to_storage {
        Some(convert) => convert(obj.clone()),
        None => obj.clone(),
    };
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
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

impl ApiServer {
    /// Open the server over a store: rebuild allocators from stored Services, and create the
    /// default namespaces and the `kubernetes` Service if missing.
    pub async fn new(store: Arc<dyn Store>, config: Config) -> ApiResult<Arc<Self>> {
        let srv = Arc::new(Self {
            ips: Mutex::new(IpAllocator::new(config.service_cidr)),
            ports: Mutex::new(PortAllocator::new(config.node_port_range)),
            store,
            config,
        });
        srv.rebuild_allocations().await?;
        srv.bootstrap().await?;
        Ok(srv)
    }

    /// The store (for the compactor and tests).
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn rebuild_allocations(&self) -> ApiResult<()> {
        let r = registry::find("", "v1", "services").expect("services are served");
        let all = self.store.range(&r.key_prefix(), None, None, None).await?;
        let mut ips = self.ips.lock().expect("allocator lock");
        let mut ports = self.ports.lock().expect("allocator lock");
        for kv in &all.kvs {
            let svc = decorate(r, kv)?;
            if let Some(ip) = svc["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
            {
                let _ = ips.allocate(ip);
            }
            for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
                if let Some(np) = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()) {
                    let _ = ports.allocate(np);
                }
            }
        }
        Ok(())
    }

    async fn bootstrap(self: &Arc<Self>) -> ApiResult<()> {
        let ns_r = registry::find("", "v1", "namespaces").expect("served");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if self.store.get(&ns_r.key(None, ns)).await?.is_none() {
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                self.create_internal(ns_r, None, body).await?;
            }
        }
        let svc_r = registry::find("", "v1", "services").expect("served");
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
            self.create_internal(svc_r, Some("default"), body).await?;
        }
        let ep_r = registry::find("", "v1", "endpoints").expect("served");
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
            self.create_internal(ep_r, Some("default"), body).await?;
        }
        Ok(())
    }

    async fn create_internal(
        self: &Arc<Self>,
        r: &'static Resource,
        ns: Option<&str>,
        body: Value,
    ) -> ApiResult<Value> {
        let req = Req {
            method: Method::POST,
            path: String::new(),
            query: HashMap::new(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        };
        let (v, _) = self.create(r, ns.map(String::from), &req).await?;
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

async fn dispatch(
    State(srv): State<Arc<ApiServer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = Req {
        method,
        path: uri.path().to_string(),
        query,
        headers,
        body,
    };
    match route(&srv, &req).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(path = %req.path, method = %req.method, message = %e.message, "request failed");
            }
            e.into_response()
        }
    }
}

async fn route(srv: &Arc<ApiServer>, req: &Req) -> ApiResult<Response> {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
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
        ["apis"] => return Ok(json_response(200, &discovery::api_group_list())),
        ["api", v] => return discovery::resource_list("", v).map(|v| json_response(200, &v)),
        ["apis", g] => return discovery::api_group(g).map(|v| json_response(200, &v)),
        ["apis", g, v] => return discovery::resource_list(g, v).map(|v| json_response(200, &v)),
        ["openapi", "v3"] => return Ok(json_response(200, &discovery::openapi_index())),
        ["openapi", "v3", rest @ ..] => {
            return discovery::openapi_doc(&rest.join("/")).map(|v| json_response(200, &v));
        }
        ["sluice", "compact"] if req.method == Method::POST => {
            let rev = srv.store.current_revision().await?;
            srv.compact(rev).await?;
            return Ok(json_response(200, &json!({"compacted": rev})));
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(&req.path)),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let target = parse_target(group, version, rest).ok_or_else(|| ApiError::no_route(&req.path))?;
    let watching = legacy_watch || matches!(req.q("watch"), Some("true" | "1"));
    handlers::serve(srv, req, target, watching).await
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let find = |plural: &str| registry::find(group, version, plural);
    let sub = |s: &str| -> Option<Option<Subresource>> {
        [
            Subresource::Status,
            Subresource::Scale,
            Subresource::Binding,
            Subresource::Finalize,
        ]
        .into_iter()
        .find(|x| x.name() == s)
        .map(Some)
    };
    let obj =
        |r: &'static Resource, ns: Option<&str>, name: &str, s: Option<&str>| -> Option<Target> {
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
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(g: &str, v: &str, p: &str) -> String {
        let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
        format!(
            "{:?}",
            parse_target(g, v, &segs).map(|t| match t {
                Target::Collection { r, ns } => format!("C {} {ns:?}", r.plural),
                Target::Object { r, ns, name, sub } =>
                    format!("O {} {ns:?} {name} {sub:?}", r.plural),
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
        assert_eq!(t("apps", "v1", "namespaces/x/widgets"), "None");
    }
}
