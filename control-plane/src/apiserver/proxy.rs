//! The `connect` subresources, as upstream's `UpgradeAwareHandler` serves them: `pods/exec`,
//! `pods/attach` and `pods/portforward` go to the kubelet of the pod's node
//! (`/exec/{ns}/{pod}/{container}`, `/attach/...`, `/portForward/{ns}/{pod}`), and
//! `pods/proxy`, `services/proxy` and `nodes/proxy` to the pod, a ready endpoint of the
//! Service, or the node's kubelet. The request goes on whole: its method, its end-to-end
//! headers and its body stream. An upgrade the backend accepts with 101 is answered 101 with
//! the backend's headers, and the two upgraded connections are then spliced byte for byte,
//! so WebSocket (`v5.channel.k8s.io`, `SPDY/3.1+portforward.k8s.io`) and SPDY pass through
//! untouched; any other answer is passed back as it came (a kubelet `Status` stays one).
//! Only `http` backends are reached: an `https:` scheme prefix is refused with 400.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::ApiServer;
use super::options::ListOptions;
use super::status::{ApiError, ApiResult};
use crate::registry::{Resource, Subresource};

/// How long a backend has to accept the connection.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that belong to one connection, never passed on (RFC 9110 7.6.1, and the ones Go's
/// reverse proxy drops). An upgrade keeps `Connection` and `Upgrade`: they are the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The target of a `connect` request, as the router parsed it.
pub(super) struct At<'a> {
    /// `pods`, `services` or `nodes`.
    pub r: &'a Resource,
    /// Namespace of namespaced resources.
    pub ns: Option<&'a str>,
    /// The name segment, with `[scheme:]name[:port]` for proxies.
    pub name: &'a str,
    /// Which subresource.
    pub sub: Subresource,
    /// The raw path after `proxy` (`/` when none).
    pub tail: &'a str,
}

/// Where a request is sent: `host:port` and the path with its query.
#[derive(Debug, PartialEq, Eq)]
struct Backend {
    addr: String,
    path: String,
}

/// The container a request means, as upstream's `validateContainer`: the named one (of any
/// kind), or the only regular one.
pub(super) fn container_of(pod: &Value, name: &str, wanted: Option<&str>) -> ApiResult<String> {
    let all: Vec<&str> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| pod["spec"][*list].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let main: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match (wanted, main.as_slice()) {
        (Some(c), _) if all.contains(&c) => Ok(c.to_string()),
        (Some(c), _) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        (None, [only]) => Ok((*only).to_string()),
        (None, []) => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        (None, _) => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            all.join(" ")
        ))),
    }
}

/// The kubelet address of a node: `InternalIP:kubeletEndpoint.Port` (10250 if unset).
pub(super) fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let ip = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    Some((ip, port))
}

/// `host:port`, with an IPv6 host in brackets.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port`, the scheme
/// `http`, `https` or empty.
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// The `[scheme:]name[:port]` of a proxy request, refusing what cannot be reached.
fn proxy_id<'a>(what: &str, id: &'a str) -> ApiResult<(&'a str, &'a str)> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {what} request {id:?}")))?;
    if scheme == "https" {
        return Err(ApiError::bad_request(format!(
            "invalid {what} request {id:?}: this API server proxies only to http backends"
        )));
    }
    Ok((name, port))
}

/// Whether the proxy may send traffic to `ip`, as upstream's `IsProxyableIP` and the pod
/// proxy's global-unicast rule: never unspecified, link-local, multicast or broadcast
/// addresses, nor loopback unless the server allows it (tests).
fn proxyable(ip: &str, loopback: bool) -> ApiResult<()> {
    let not_allowed = || ApiError::bad_request("address not allowed");
    let ip: IpAddr = ip.parse().map_err(|_| not_allowed())?;
    let bad = match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (v4.is_loopback() && !loopback)
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || (v6.is_loopback() && !loopback)
        }
    };
    if bad { Err(not_allowed()) } else { Ok(()) }
}

/// The query pairs of a request, in order.
fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A boolean option as Go's `Convert_Slice_string_To_bool` reads the first value: only "0"
/// and "false" (any case) are false.
fn flag(pairs: &[(String, String)], key: &str, default: bool) -> bool {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or(default, |(_, v)| {
            v != "0" && !v.eq_ignore_ascii_case("false")
        })
}

/// The kubelet query of an exec or attach (upstream's `streamParams`, keys sorted as Go's
/// `url.Values.Encode` writes them): `command` repeated (exec only), then `error`, `input`,
/// `output`, `tty` as `1` when set. `stdout` and `stderr` default to true.
fn stream_query(pairs: &[(String, String)], exec: bool) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    if exec {
        for (_, c) in pairs.iter().filter(|(k, _)| k == "command") {
            out.append_pair("command", c);
        }
    }
    for (param, option, default) in [
        ("error", "stderr", true),
        ("input", "stdin", false),
        ("output", "stdout", true),
        ("tty", "tty", false),
    ] {
        if flag(pairs, option, default) {
            out.append_pair(param, "1");
        }
    }
    out.finish()
}

/// The kubelet query of a port-forward: the `ports` options (repeated or comma-separated)
/// joined as upstream's single `port` parameter; none when no ports were given.
fn port_forward_query(pairs: &[(String, String)]) -> ApiResult<String> {
    let mut ports = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "ports") {
        for p in v.split(',') {
            let n: u16 = p.trim().parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "cannot convert to []int32: strconv.ParseUint: parsing {p:?}: invalid syntax"
                ))
            })?;
            ports.push(n.to_string());
        }
    }
    if ports.is_empty() {
        return Ok(String::new());
    }
    Ok(form_urlencoded::Serializer::new(String::new())
        .append_pair("port", &ports.join(","))
        .finish())
}

fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The first IP of a pod (`status.podIPs[0]`, else `status.podIP`).
fn pod_ip(pod: &Value) -> Option<&str> {
    pod["status"]["podIPs"][0]["ip"]
        .as_str()
        .or_else(|| pod["status"]["podIP"].as_str())
        .filter(|s| !s.is_empty())
}

/// Upstream's default pod proxy port: the first port declared by any container.
fn first_container_port(pod: &Value) -> Option<i64> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find_map(|c| c["ports"][0]["containerPort"].as_i64())
}

/// Whether the client asks to switch protocols (`Connection: upgrade` and `Upgrade:`).
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The headers passed on: everything end-to-end (repeated ones stay repeated); `Connection`
/// and `Upgrade` too when `upgrade`. `Host` is the backend's, and the API server's own
/// credentials stay here.
fn pass_headers(from: &HeaderMap, upgrade: bool) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade")
        .collect();
    let mut out = HeaderMap::new();
    for (k, v) in from {
        let name = k.as_str();
        let kept_for_upgrade = upgrade && (name == "connection" || name == "upgrade");
        let dropped = (HOP_BY_HOP.contains(&name) && !kept_for_upgrade)
            || named.iter().any(|n| n == name)
            || name == "host"
            || name == "authorization";
        if !dropped {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

/// A backend that could not be reached: upstream's wording for upgrades ("error dialing
/// backend", 500) and for proxied requests ("error trying to reach service", 503).
fn unreachable(upgrade: bool, e: &dyn std::fmt::Display) -> ApiError {
    if upgrade {
        ApiError::internal(format!("error dialing backend: {e}"))
    } else {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    }
}

/// Send `request` to `backend` and answer with what it answers; an accepted upgrade is
/// spliced to the client's connection. `upgrade_required`: a plain request is refused
/// (exec, attach, portforward), as upstream's handler does.
async fn forward(
    mut request: Request,
    backend: &Backend,
    upgrade_required: bool,
) -> ApiResult<Response> {
    let upgrade = is_upgrade(request.headers());
    if upgrade_required && !upgrade {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let stream = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(&backend.addr))
        .await
        .map_err(|_| unreachable(upgrade, &format!("dial tcp {}: i/o timeout", backend.addr)))?
        .map_err(|e| unreachable(upgrade, &format!("dial tcp {}: {e}", backend.addr)))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(upgrade, &e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    let mut headers = pass_headers(&parts.headers, upgrade);
    let host = HeaderValue::from_str(&backend.addr)
        .map_err(|e| ApiError::internal(format!("backend address {}: {e}", backend.addr)))?;
    headers.insert(header::HOST, host);
    if !upgrade {
        let uri = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(v) = HeaderValue::from_str(uri) {
            headers.insert("x-forwarded-uri", v);
        }
        if let Some(h) = parts.headers.get(header::HOST) {
            headers.insert("x-forwarded-host", h.clone());
        }
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    // An upgrade request carries no body of its own: what follows belongs to the new protocol.
    let body = if upgrade { Body::empty() } else { body };
    let mut out = hyper::Request::builder()
        .method(parts.method)
        .uri(&backend.path)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("invalid backend request: {e}")))?;
    *out.headers_mut() = headers;
    let mut reply = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable(upgrade, &e))?;
    if let Some(client_upgrade) = client_upgrade
        && reply.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let backend_upgrade = hyper::upgrade::on(&mut reply);
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *resp.headers_mut() = reply.headers().clone();
        tokio::spawn(splice(client_upgrade, backend_upgrade));
        return Ok(resp);
    }
    let (rparts, rbody) = reply.into_parts();
    let mut resp = Response::new(Body::new(rbody));
    *resp.status_mut() = rparts.status;
    *resp.headers_mut() = pass_headers(&rparts.headers, false);
    Ok(resp)
}

/// Copy bytes both ways between the two upgraded connections; each write side is shut down
/// when the other side's read ends, and both close when both directions are done.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
        Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
    }
}

/// Serve a `connect` request: find the backend, then forward the request whole.
pub(super) async fn serve(
    srv: &Arc<ApiServer>,
    at: &At<'_>,
    request: Request,
) -> ApiResult<Response> {
    let pairs = pairs(request.uri().query());
    match at.sub {
        Subresource::Exec | Subresource::Attach | Subresource::PortForward => {
            if !matches!(*request.method(), Method::GET | Method::POST) {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource ({})",
                    request.method()
                )));
            }
            let backend = srv.stream_backend(at, &pairs).await?;
            forward(request, &backend, true).await
        }
        Subresource::Proxy => {
            let query = request.uri().query().unwrap_or_default().to_string();
            let (addr, mut path) = match at.r.plural.as_str() {
                "pods" => srv.pod_proxy_address(at).await?,
                "services" => srv.service_proxy_address(at).await?,
                _ => srv.node_proxy_address(at.name).await?,
            };
            path.push_str(at.tail.strip_prefix('/').unwrap_or(at.tail));
            let backend = Backend {
                addr,
                path: with_query(path, &query),
            };
            forward(request, &backend, false).await
        }
        other => Err(ApiError::internal(format!(
            "{} is not a connect subresource",
            other.name()
        ))),
    }
}

impl ApiServer {
    /// The kubelet of a node, `(ip, port)`: 404 for a missing node, 500 for one with no
    /// `InternalIP`.
    pub(super) async fn kubelet_of(&self, node_name: &str) -> ApiResult<(String, u16)> {
        let nodes = self.resource("", "v1", "nodes");
        let (node, _) = self.get(&nodes, None, node_name).await?;
        kubelet_address(&node).ok_or_else(|| {
            ApiError::internal(format!(
                "node {node_name} has no InternalIP to reach its kubelet at"
            ))
        })
    }

    /// Upstream's `ExecLocation`/`AttachLocation`/`PortForwardLocation`.
    async fn stream_backend(&self, at: &At<'_>, pairs: &[(String, String)]) -> ApiResult<Backend> {
        let (pod, _) = self.get(at.r, at.ns, at.name).await?;
        let ns = at.ns.unwrap_or_default();
        let name = at.name;
        let path = if at.sub == Subresource::PortForward {
            with_query(
                format!("/portForward/{ns}/{name}"),
                &port_forward_query(pairs)?,
            )
        } else {
            let wanted = pairs
                .iter()
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty());
            let container = container_of(&pod, name, wanted)?;
            let phase = pod["status"]["phase"].as_str().unwrap_or_default();
            if matches!(phase, "Succeeded" | "Failed") {
                return Err(ApiError::bad_request(if at.sub == Subresource::Exec {
                    format!(
                        "cannot exec into a container in a completed pod; current phase is {phase}"
                    )
                } else {
                    format!(
                        "cannot attach a container in a completed pod; current phase is {phase}"
                    )
                }));
            }
            let exec = at.sub == Subresource::Exec;
            with_query(
                format!("/{}/{ns}/{name}/{container}", at.sub.name()),
                &stream_query(pairs, exec),
            )
        };
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if node_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        let (ip, port) = self.kubelet_of(node_name).await?;
        Ok(Backend {
            addr: join_host_port(&ip, &port.to_string()),
            path,
        })
    }

    /// Upstream's pod `ResourceLocation`: the pod IP, at the named port or the first
    /// container port (none: the scheme's default). Returns the address and the base path.
    async fn pod_proxy_address(&self, at: &At<'_>) -> ApiResult<(String, String)> {
        let (name, port) = proxy_id("pod", at.name)?;
        let (pod, _) = self.get(at.r, at.ns, name).await?;
        let port = if port.is_empty() {
            first_container_port(&pod).map_or_else(|| "80".to_string(), |p| p.to_string())
        } else {
            port.to_string()
        };
        let ip = pod_ip(&pod).unwrap_or_default();
        proxyable(ip, self.config.proxy_loopback)?;
        Ok((join_host_port(ip, &port), "/".into()))
    }

    /// Upstream's service `ResourceLocation`, over `EndpointSlices`: the Service port (by
    /// number, mapped to its name; or by name) picks the endpoint port of the same name, and
    /// a random ready endpoint that has it is the target.
    async fn service_proxy_address(&self, at: &At<'_>) -> ApiResult<(String, String)> {
        let (svc_name, port) = proxy_id("service", at.name)?;
        let (svc, _) = self.get(at.r, at.ns, svc_name).await?;
        let port_name = match port.parse::<i64>() {
            Ok(n) => svc["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["port"].as_i64() == Some(n))
                .map(|p| p["name"].as_str().unwrap_or_default().to_string())
                .ok_or_else(|| {
                    ApiError::new(
                        503,
                        "ServiceUnavailable",
                        format!("no service port {n} found for service {svc_name:?}"),
                    )
                })?,
            Err(_) => port.to_string(),
        };
        let slices_r = self.resource("discovery.k8s.io", "v1", "endpointslices");
        let slices = self
            .list(&slices_r, at.ns, &ListOptions::default())
            .await?
            .items;
        let mut any_ready = false;
        let mut candidates: Vec<(String, i64)> = Vec::new();
        for slice in slices.iter().filter(|s| {
            s["metadata"]["labels"]["kubernetes.io/service-name"].as_str() == Some(svc_name)
        }) {
            let ready: Vec<&str> = slice["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["conditions"]["ready"].as_bool() != Some(false))
                .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            any_ready |= !ready.is_empty();
            let Some(port) = slice["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
                .and_then(|p| p["port"].as_i64())
            else {
                continue;
            };
            candidates.extend(ready.iter().map(|ip| ((*ip).to_string(), port)));
        }
        if candidates.is_empty() {
            let shown = if any_ready { at.name } else { svc_name };
            return Err(ApiError::new(
                503,
                "ServiceUnavailable",
                format!("no endpoints available for service {shown:?}"),
            ));
        }
        let (ip, port) = &candidates[rand::random_range(0..candidates.len())];
        proxyable(ip, self.config.proxy_loopback)?;
        Ok((join_host_port(ip, &port.to_string()), "/".into()))
    }

    /// Upstream's node `ResourceLocation`: the node's kubelet, or another port on its
    /// `InternalIP`.
    async fn node_proxy_address(&self, id: &str) -> ApiResult<(String, String)> {
        let (name, port) = proxy_id("node", id)?;
        let (ip, kubelet_port) = self.kubelet_of(name).await?;
        proxyable(&ip, self.config.proxy_loopback)?;
        let port = if port.is_empty() {
            kubelet_port.to_string()
        } else {
            port.to_string()
        };
        Ok((join_host_port(&ip, &port), "/".into()))
    }
}

#[cfg(test)]
mod tests;
